//! The pid file: written at start, read by `pinlb -s`, removed at exit if still ours.

use std::io;
use std::path::Path;

/// Writes this process's id.
pub fn write(path: &Path) -> Result<(), String> {
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|e| {
        format!(
            "open() \"{}\" failed ({})",
            path.display(),
            crate::logging::io_text(&e)
        )
    })
}

/// The process id in `path`.
pub fn read(path: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!("no pid file {}: is pinlb running?", path.display()),
        _ => format!(
            "open() \"{}\" failed ({})",
            path.display(),
            crate::logging::io_text(&e)
        ),
    })?;
    text.trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| {
            format!(
                "invalid PID number \"{}\" in \"{}\"",
                text.trim(),
                path.display()
            )
        })
}

/// Removes `path` if it holds this process's id.
pub fn remove_if_ours(path: &Path) {
    if read(path).is_ok_and(|pid| pid == std::process::id() as i32) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_only_our_own_is_removed() {
        let path = std::env::temp_dir().join(format!("pinlb-pid-{}", std::process::id()));
        write(&path).unwrap();
        assert_eq!(read(&path).unwrap(), std::process::id() as i32);
        std::fs::write(&path, "1\n").unwrap();
        remove_if_ours(&path);
        assert!(path.exists(), "another process's pid file was removed");
        write(&path).unwrap();
        remove_if_ours(&path);
        assert!(!path.exists());
    }

    #[test]
    fn bad_contents_are_reported() {
        let path = std::env::temp_dir().join(format!("pinlb-badpid-{}", std::process::id()));
        std::fs::write(&path, "x\n").unwrap();
        assert!(
            read(&path)
                .unwrap_err()
                .starts_with("invalid PID number \"x\"")
        );
        let _ = std::fs::remove_file(&path);
        assert!(read(&path).unwrap_err().contains("is pinlb running?"));
    }
}
