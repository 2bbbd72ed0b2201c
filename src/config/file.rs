//! Reading configuration files without trusting them: only regular files, at most
//! [`MAX_CONFIG_BYTES`], and never blocking on a FIFO or a device (`-c /dev/zero`,
//! `include /dev/*`), so that a bad path gives an error at once, at start and on reload.

use nix::fcntl::OFlag;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest configuration file pinlb reads (and the most all includes may add up to).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The bytes of the configuration file at `path`.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    // Non-blocking, so that opening a FIFO with no writer returns at once; reads of a
    // regular file are not affected by the flag.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

pub(crate) fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("larger than {} MiB", MAX_CONFIG_BYTES >> 20),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_folders_are_refused_at_once() {
        for path in ["/dev/zero", "/dev/null", "/"] {
            let err = read(Path::new(path)).unwrap_err();
            assert_eq!(err.to_string(), "not a regular file", "{path}");
        }
    }

    #[test]
    fn a_fifo_without_a_writer_does_not_block() {
        let dir = std::env::temp_dir().join(format!("pinlb-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("conf");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(
            &fifo,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .unwrap();
        let err = read(&fifo).unwrap_err();
        assert_eq!(err.to_string(), "not a regular file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_regular_file_is_read_whole() {
        let path = std::env::temp_dir().join(format!("pinlb-conf-{}", std::process::id()));
        std::fs::write(&path, b"events {}\n").unwrap();
        assert_eq!(read(&path).unwrap(), b"events {}\n");
        std::fs::remove_file(&path).unwrap();
    }
}
