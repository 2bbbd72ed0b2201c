//! Access log sinks: lines go through a bounded queue to a writer thread per destination,
//! so writing never blocks a request. A full queue drops the line and counts it.

use log::warn;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

/// Lines waiting for the writer, per destination.
const QUEUE_LINES: usize = 16 * 1024;

/// Called with each dropped line: counts it for metrics.
pub type DropCounter = Arc<dyn Fn() + Send + Sync>;

/// One destination (`stdout`, `stderr` or a file).
pub struct Sink {
    path: String,
    queue: SyncSender<Vec<u8>>,
    dropped: std::sync::atomic::AtomicU64,
    on_drop: DropCounter,
}

impl Sink {
    /// Queues a line; never waits.
    pub fn write(&self, line: Vec<u8>) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(line)
        {
            (self.on_drop)();
            let n = self
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            if n.is_power_of_two() {
                warn!(
                    "access log {}: {n} lines dropped because the writer falls behind",
                    self.path
                );
            }
        }
    }
}

/// Opens sinks once per destination; sinks of unchanged destinations are reused across
/// config reloads so that a file is never written by two threads.
#[derive(Default)]
pub struct Sinks {
    open: Mutex<HashMap<String, Arc<Sink>>>,
}

impl Sinks {
    /// The sink for `path`, opening the file (append) and starting its writer if needed.
    pub fn get(&self, path: &str, on_drop: &DropCounter) -> Result<Arc<Sink>, String> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sink) = open.get(path) {
            return Ok(Arc::clone(sink));
        }
        let out: Box<dyn Write + Send> = match path {
            "stdout" => Box::new(std::io::stdout()),
            "stderr" => Box::new(std::io::stderr()),
            file => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(file)
                    .map_err(|e| {
                        format!("open() \"{file}\" failed ({})", crate::logging::io_text(&e))
                    })?,
            ),
        };
        let (queue, lines) = sync_channel(QUEUE_LINES);
        let name = path.to_string();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(&name, lines, out))
            .map_err(|e| format!("cannot start the access log writer: {e}"))?;
        let sink = Arc::new(Sink {
            path: path.to_string(),
            queue,
            dropped: Default::default(),
            on_drop: Arc::clone(on_drop),
        });
        open.insert(path.to_string(), Arc::clone(&sink));
        Ok(sink)
    }
}

/// The writer thread: writes what is queued, then flushes once the queue is empty, so a
/// burst costs one flush and a quiet log is never left unflushed.
fn write_lines(path: &str, lines: Receiver<Vec<u8>>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut failed = false;
    while let Ok(first) = lines.recv() {
        let mut result = out.write_all(&first);
        while let (Ok(()), Ok(line)) = (&result, lines.try_recv()) {
            result = out.write_all(&line);
        }
        if let Err(e) = result.and_then(|()| out.flush()) {
            if !failed {
                warn!("access log {path}: write failed: {e}");
            }
            failed = true;
        }
    }
    let _ = out.flush();
}
