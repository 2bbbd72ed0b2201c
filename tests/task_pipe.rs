//! The vendored pingora-proxy task pipe's own unit tests: vendored crates are not members
//! of the workspace, so their tests run by including the module here.

#[allow(dead_code)]
#[path = "../vendor/pingora-proxy/src/task_pipe.rs"]
mod task_pipe;
