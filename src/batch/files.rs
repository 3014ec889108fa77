//! Where the Batch API's file bytes live: behind [`FileStore`], so object storage can follow;
//! [`LocalFiles`] keeps each file as one file under `<data_dir>/files`, readable by the owner
//! only (uploads hold prompts). Metadata (tenant, purpose, size) is in the store.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("file store: {0}")]
    Io(#[from] std::io::Error),
    #[error("file id {0:?} is not one the gateway makes")]
    BadId(String),
}

#[async_trait::async_trait]
pub trait FileStore: Send + Sync {
    /// Writes the bytes of file `id` (replacing them if it exists).
    async fn put(&self, id: &str, bytes: &[u8]) -> Result<(), FileError>;
    async fn get(&self, id: &str) -> Result<Vec<u8>, FileError>;
    /// Removes file `id` (no error if it is already gone).
    async fn delete(&self, id: &str) -> Result<(), FileError>;
}

/// Files in a directory.
pub struct LocalFiles {
    dir: PathBuf,
}

impl LocalFiles {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, id: &str) -> Result<PathBuf, FileError> {
        // Ids are the gateway's own (`file-` and a UUID, or a batch's id and a suffix); anything
        // else could name a path outside the directory.
        let ok = !id.is_empty()
            && id.len() <= 128
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(FileError::BadId(id.to_string()));
        }
        Ok(self.dir.join(id))
    }
}

#[async_trait::async_trait]
impl FileStore for LocalFiles {
    async fn put(&self, id: &str, bytes: &[u8]) -> Result<(), FileError> {
        let path = self.path(id)?;
        tokio::fs::create_dir_all(&self.dir).await?;
        // Written aside and renamed, so a reader never sees half a file.
        let tmp = self.dir.join(format!(".{id}.tmp"));
        let mut opts = tokio::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let mut f = opts.open(&tmp).await?;
        tokio::io::AsyncWriteExt::write_all(&mut f, bytes).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Vec<u8>, FileError> {
        Ok(tokio::fs::read(self.path(id)?).await?)
    }

    async fn delete(&self, id: &str) -> Result<(), FileError> {
        match tokio::fs::remove_file(self.path(id)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_round_trip_owner_only_and_refuse_paths() {
        let dir = tempfile::tempdir().unwrap();
        let fs = LocalFiles::new(dir.path().join("files"));
        fs.put("file-abc", b"{}\n").await.unwrap();
        assert_eq!(fs.get("file-abc").await.unwrap(), b"{}\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("files/file-abc")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs.put("file-abc", b"x").await.unwrap();
        assert_eq!(fs.get("file-abc").await.unwrap(), b"x");
        fs.delete("file-abc").await.unwrap();
        fs.delete("file-abc").await.unwrap();
        assert!(fs.get("file-abc").await.is_err());
        for bad in ["../x", "a/b", "", "file.jsonl"] {
            assert!(matches!(fs.put(bad, b"x").await, Err(FileError::BadId(_))), "{bad}");
        }
    }
}
