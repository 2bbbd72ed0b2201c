//! An issuer's `state_path`: the account (`account.json`, its key inside) and each
//! certificate's chain and key (`ID.crt`, `ID.key`), written whole (a temporary file
//! renamed) with keys readable by pinlb's user only. With `state_path off` nothing is
//! kept: a restart orders again.

use instant_acme::AccountCredentials;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const ACCOUNT_FILE: &str = "account.json";

/// One issuer's folder, or none.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: Option<PathBuf>,
}

impl StateDir {
    pub fn new(path: Option<PathBuf>) -> StateDir {
        StateDir { path }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Creates the folder (0700) and checks that files can be written in it: what `-t`
    /// and every reload check, so that a certificate is never issued and then lost.
    pub fn check_writable(&self) -> Result<(), String> {
        let Some(dir) = &self.path else { return Ok(()) };
        let cannot = |e: std::io::Error| format!("cannot write to \"{}\": {e}", dir.display());
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(cannot)?;
        let probe = dir.join(".pinlb-write-check");
        write_private(&probe, b"").map_err(cannot)?;
        let _ = fs::remove_file(&probe);
        Ok(())
    }

    /// The stored account, if it was made at `uri` (a changed `uri` means another CA).
    pub fn account(&self, uri: &str) -> Option<AccountCredentials> {
        let text = fs::read(self.path.as_ref()?.join(ACCOUNT_FILE)).ok()?;
        let stored: serde_json::Value = serde_json::from_slice(&text).ok()?;
        if stored.get("uri")?.as_str()? != uri {
            return None;
        }
        serde_json::from_value(stored.get("credentials")?.clone()).ok()
    }

    pub fn save_account(&self, uri: &str, credentials: &AccountCredentials) -> Result<(), String> {
        let Some(dir) = &self.path else { return Ok(()) };
        let json = serde_json::json!({ "uri": uri, "credentials": credentials });
        let text = serde_json::to_vec_pretty(&json).map_err(|e| e.to_string())?;
        write_private(&dir.join(ACCOUNT_FILE), &text)
            .map_err(|e| format!("cannot write \"{}\": {e}", dir.join(ACCOUNT_FILE).display()))
    }

    /// Forgets the stored account (the CA no longer knows it): the next order makes one.
    pub fn forget_account(&self) {
        if let Some(dir) = &self.path {
            let _ = fs::remove_file(dir.join(ACCOUNT_FILE));
        }
    }

    /// The chain and key (PEM) stored for certificate `id`.
    pub fn certificate(&self, id: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        let (cert, key) = self.cert_files(id)?;
        Some((fs::read(cert).ok()?, fs::read(key).ok()?))
    }

    /// The files of certificate `id`: `ID.crt` and `ID.key`.
    pub fn cert_files(&self, id: &str) -> Option<(PathBuf, PathBuf)> {
        let dir = self.path.as_ref()?;
        Some((dir.join(format!("{id}.crt")), dir.join(format!("{id}.key"))))
    }

    /// Keeps a new certificate: the key first, so that a crash in between leaves the
    /// old certificate with a key that does not match it, which loading refuses (and a
    /// new order follows), never a certificate without its key.
    pub fn save_certificate(&self, id: &str, chain: &[u8], key: &[u8]) -> Result<(), String> {
        let Some((cert_path, key_path)) = self.cert_files(id) else {
            return Ok(());
        };
        write_private(&key_path, key)
            .map_err(|e| format!("cannot write \"{}\": {e}", key_path.display()))?;
        write_private(&cert_path, chain)
            .map_err(|e| format!("cannot write \"{}\": {e}", cert_path.display()))
    }
}

/// Writes `path` whole with mode 0600: a temporary file beside it, renamed.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(data)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn certificates_are_kept_with_private_keys() {
        let dir = std::env::temp_dir().join(format!("pinlb-acme-store-{}", std::process::id()));
        let state = StateDir::new(Some(dir.join("acme_le")));
        state.check_writable().unwrap();
        state
            .save_certificate("site.test", b"CHAIN", b"KEY")
            .unwrap();
        assert_eq!(
            state.certificate("site.test"),
            Some((b"CHAIN".to_vec(), b"KEY".to_vec()))
        );
        let mode = fs::metadata(dir.join("acme_le/site.test.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(dir.join("acme_le"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(state.account("https://ca.test/dir").is_none());
        fs::remove_dir_all(&dir).unwrap();
        assert!(StateDir::new(None).certificate("site.test").is_none());
    }
}
