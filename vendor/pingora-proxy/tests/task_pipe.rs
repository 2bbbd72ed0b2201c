//! The task pipe's unit tests (in the module). The crate's own unit tests need dev-dependencies
//! that are not vendored, so the module is built here on its own: it needs only std and tokio.

#[allow(dead_code)]
#[path = "../src/task_pipe.rs"]
mod task_pipe;
