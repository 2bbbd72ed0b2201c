//! Access log sinks: lines go through a bounded queue to a writer thread per destination,
//! so writing never blocks a request. A full queue drops the line and counts it.

use log::warn;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lines waiting for the writer, per destination.
const QUEUE_LINES: usize = 16 * 1024;

/// Called with each dropped line: counts it for metrics.
pub type DropCounter = Arc<dyn Fn() + Send + Sync>;

type Output = Box<dyn Write + Send>;

/// One destination (`stdout`, `stderr` or a file).
pub struct Sink {
    path: String,
    queue: SyncSender<Vec<u8>>,
    /// The writer's end until its thread starts. Started on the first line, so that a
    /// process that daemonizes (forks) after opening its logs still has a writer.
    waiting: Mutex<Option<(Receiver<Vec<u8>>, Output)>>,
    started: AtomicBool,
    /// Lines queued and not yet written out.
    pending: Arc<AtomicUsize>,
    dropped: AtomicU64,
    on_drop: DropCounter,
}

impl Sink {
    /// Queues a line; never waits.
    pub fn write(&self, line: Vec<u8>) {
        self.start_writer();
        self.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(line)
        {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            (self.on_drop)();
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                warn!(
                    "access log {}: {n} lines dropped because the writer falls behind",
                    self.path
                );
            }
        }
    }

    fn start_writer(&self) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        self.started.store(true, Ordering::Release);
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((lines, out)) = waiting.take() else {
            return;
        };
        let (path, pending) = (self.path.clone(), Arc::clone(&self.pending));
        let started = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(&path, lines, out, &pending));
        if let Err(e) = started {
            warn!("access log {}: cannot start its writer: {e}", self.path);
        }
    }
}

/// Opens sinks once per destination; sinks of unchanged destinations are reused across
/// config reloads so that a file is never written by two threads.
#[derive(Default)]
pub struct Sinks {
    open: Mutex<HashMap<String, Arc<Sink>>>,
    /// Opens nothing: for checking or printing a config (`--print-config`) without
    /// creating its log files.
    offline: bool,
}

impl Sinks {
    /// Sinks that open no file and discard every line.
    pub fn offline() -> Sinks {
        Sinks {
            offline: true,
            ..Sinks::default()
        }
    }

    /// The sink for `path`, opening the file (append) if needed.
    pub fn get(&self, path: &str, on_drop: &DropCounter) -> Result<Arc<Sink>, String> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sink) = open.get(path) {
            return Ok(Arc::clone(sink));
        }
        let out: Output = match path {
            _ if self.offline => Box::new(std::io::sink()),
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
        let sink = Arc::new(Sink {
            path: path.to_string(),
            queue,
            waiting: Mutex::new(Some((lines, out))),
            started: AtomicBool::new(false),
            pending: Arc::default(),
            dropped: AtomicU64::new(0),
            on_drop: Arc::clone(on_drop),
        });
        open.insert(path.to_string(), Arc::clone(&sink));
        Ok(sink)
    }

    /// Waits (at most `timeout`) until every queued line is written: before exiting.
    pub fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        for sink in open.values() {
            while sink.pending.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// The writer thread: writes what is queued, then flushes once the queue is empty, so a
/// burst costs one flush and a quiet log is never left unflushed.
fn write_lines(path: &str, lines: Receiver<Vec<u8>>, out: Output, pending: &AtomicUsize) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut failed = false;
    while let Ok(first) = lines.recv() {
        let mut written = 1;
        let mut result = out.write_all(&first);
        while let Ok(line) = lines.try_recv() {
            written += 1;
            if result.is_ok() {
                result = out.write_all(&line);
            }
        }
        if let Err(e) = result.and_then(|()| out.flush()) {
            if !failed {
                warn!("access log {path}: write failed: {e}");
            }
            failed = true;
        }
        pending.fetch_sub(written, Ordering::Relaxed);
    }
    let _ = out.flush();
}
