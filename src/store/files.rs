//! The SQLite store's files on disk: the key beside the database (`encryption.key`), made once
//! and kept private, and the private modes of the database's folder and file.

use super::{StoreError, StoreResult};
use crate::crypto::Cipher;
use std::path::Path;

/// The key in `encryption.key` beside the database, made (32 random bytes, base64, mode 0600)
/// the first time; an existing one that others may read is made 0600 (see [`make_private`]).
pub fn key_beside(db: &Path) -> StoreResult<Cipher> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let path = db.with_file_name("encryption.key");
    let problem = StoreError::Open;
    if !path.exists() {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        create_private_file(&path).map_err(problem)?;
        std::fs::write(&path, STANDARD.encode(key))
            .map_err(|e| problem(format!("cannot write {}: {e}", path.display())))?;
        tracing::info!(file = %path.display(), "made a new encryption key for the store");
    }
    make_private(&path).map_err(problem)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
    let key = crate::crypto::EncryptionKey::from_base64(&text);
    let file = path.display();
    let not_a_key = || problem(format!("{file} does not hold a base64 32-byte key"));
    key.and_then(|k| Cipher::new(&[k.0])).ok_or_else(not_a_key)
}

#[cfg(unix)]
pub fn create_private_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

#[cfg(not(unix))]
pub fn create_private_file(_: &Path) -> Result<(), String> {
    Ok(())
}

/// A key file others may read is made 0600, with a warning naming it (it may have been copied:
/// rotate the key); one this process cannot change (another owner) stops the start-up.
#[cfg(unix)]
fn make_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let (file, mode) = (path.display(), mode & 0o777);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        format!("{file} is readable by others (mode {mode:o}) and cannot be made private: {e}")
    })?;
    tracing::warn!(
        "{file} was readable by others (mode {mode:o}); it is now 0600. Anyone who read it can open the store's records: rotate the key (ENCRYPTION_KEYS=NEW,OLD)"
    );
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_: &Path) -> Result<(), String> {
    Ok(())
}

/// Creates `dir` and any missing parent as 0700 (an existing folder is left as it is).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
