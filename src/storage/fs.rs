//! Filesystem adapter: blobs under `<root>/blobs`, written to `<root>/tmp` then renamed.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tempfile::TempPath;
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;

use super::fs_layout::{key_to_path, path_to_key, prefix_dir};
use super::{
    BlobInfo, BlobRange, BlobRead, BlobStore, ByteStream, CompletedPart, ListPage, ListedBlob, OpenMultipart, PartInfo,
    PresignTarget, PresignedRequest, SigningWindow, StorageError, check_blob_key,
};

const READ_CHUNK: usize = 256 * 1024;
const WRITE_BUFFER: usize = 1024 * 1024;
const KEY_FILE: &str = "key";

pub struct FsBlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
    multipart: PathBuf,
}

fn backend(error: std::io::Error) -> StorageError {
    if error.kind() == std::io::ErrorKind::NotFound {
        StorageError::NotFound
    } else {
        StorageError::Backend(error.into())
    }
}

fn modified(meta: &std::fs::Metadata) -> DateTime<Utc> {
    meta.modified().map_or_else(|_| Utc::now(), DateTime::<Utc>::from)
}

/// Makes a rename into `dir` durable: without it, a power loss right after
/// the database commit may lose the new directory entry, and with it a
/// committed object's bytes.
async fn sync_dir(dir: Option<&Path>) -> Result<(), StorageError> {
    let Some(dir) = dir else { return Ok(()) };
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|handle| handle.sync_all()))
        .await
        .map_err(|error| StorageError::Backend(error.into()))?
        .map_err(backend)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub async fn open(root: PathBuf) -> Result<Self, StorageError> {
        let store = Self { blobs: root.join("blobs"), tmp: root.join("tmp"), multipart: root.join("multipart") };
        for dir in [&store.blobs, &store.tmp, &store.multipart] {
            fs::create_dir_all(dir).await.map_err(|error| {
                StorageError::Unavailable(anyhow::anyhow!("cannot create {}: {error}", dir.display()))
            })?;
        }
        store.remove_stale_temp_files().await;
        Ok(store)
    }

    /// Temp files a crash or a dropped request left behind (an hour old: no
    /// write in progress is that idle, the body timeout ends it first).
    async fn remove_stale_temp_files(&self) {
        let Ok(mut entries) = fs::read_dir(&self.tmp).await else { return };
        let stale_before = std::time::SystemTime::now() - Duration::from_secs(3600);
        while let Ok(Some(entry)) = entries.next_entry().await {
            let stale = entry.metadata().await.and_then(|meta| meta.modified()).is_ok_and(|at| at < stale_before);
            if stale && let Err(error) = fs::remove_file(entry.path()).await {
                tracing::warn!(error = %error, path = %entry.path().display(), "could not remove a stale temp file");
            }
        }
    }

    fn blob_path(&self, key: &str) -> Result<PathBuf, StorageError> {
        check_blob_key(key)?;
        Ok(self.blobs.join(key_to_path(key)))
    }

    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf, StorageError> {
        if upload_id.len() != 32 || !upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StorageError::NotFound);
        }
        Ok(self.multipart.join(upload_id))
    }

    /// A fresh temp file's path, the file removed when it is dropped unkept: a
    /// failed or abandoned write (a client gone mid-body, an upload aborted
    /// meanwhile) leaves nothing behind in `tmp` until the next start.
    fn temp_path(&self) -> Result<TempPath, StorageError> {
        TempPath::try_from_path(self.tmp.join(new_id())).map_err(backend)
    }

    /// Streams `body` into a fresh temp file, fsyncs it, and returns its path and size.
    async fn write_temp(&self, mut body: ByteStream) -> Result<(TempPath, u64), StorageError> {
        let path = self.temp_path()?;
        let file = fs::File::create(&path).await.map_err(backend)?;
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, file);
        let result: Result<u64, StorageError> = async {
            let mut written = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(StorageError::Client)?;
                writer.write_all(&chunk).await.map_err(backend)?;
                written += chunk.len() as u64;
            }
            writer.flush().await.map_err(backend)?;
            writer.get_ref().sync_all().await.map_err(backend)?;
            Ok(written)
        }
        .await;
        result.map(|size| (path, size))
    }

    /// Moves a finished temp file to `target`, creating parents (racing deletes may prune them).
    async fn publish(&self, temp: TempPath, target: &Path) -> Result<(), StorageError> {
        let mut attempts = 0;
        loop {
            let mut created = false;
            if let Some(parent) = target.parent() {
                created = fs::metadata(parent).await.is_err();
                fs::create_dir_all(parent).await.map_err(backend)?;
            }
            match fs::rename(&temp, target).await {
                Ok(()) => {
                    let _ = temp.keep();
                    // New directories' own entries must be durable too, up to the root.
                    let mut dir = target.parent();
                    while let Some(current) = dir {
                        sync_dir(Some(current)).await?;
                        if !created || current == self.blobs || !current.starts_with(&self.blobs) {
                            return Ok(());
                        }
                        dir = current.parent();
                    }
                    return Ok(());
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(error) => return Err(backend(error)),
            }
        }
    }

    /// Removes empty directories from `start` up to (not including) the blobs root.
    async fn prune_empty_dirs(&self, start: Option<&Path>) {
        let mut current = start.map(Path::to_path_buf);
        while let Some(dir) = current {
            if dir == self.blobs || !dir.starts_with(&self.blobs) || fs::remove_dir(&dir).await.is_err() {
                break;
            }
            current = dir.parent().map(Path::to_path_buf);
        }
    }

    async fn read_parts(&self, upload_id: &str) -> Result<Vec<(PartInfo, PathBuf)>, StorageError> {
        let dir = self.upload_dir(upload_id)?;
        let mut entries = fs::read_dir(&dir).await.map_err(backend)?;
        let mut parts = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(backend)? {
            let name = entry.file_name();
            let Some((number, etag)) = name.to_str().and_then(|n| n.split_once('-')) else {
                continue;
            };
            let Ok(part_number) = number.parse::<u32>() else {
                continue;
            };
            let size = entry.metadata().await.map_err(backend)?.len();
            parts.push((PartInfo { part_number, etag: etag.to_owned(), size }, entry.path()));
        }
        parts.sort_by_key(|(part, _)| part.part_number);
        Ok(parts)
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    fn kind(&self) -> &'static str {
        "fs"
    }

    fn max_put_bytes(&self) -> u64 {
        u64::MAX
    }

    async fn check(&self) -> Result<(), StorageError> {
        let probe = self.tmp.join(format!("probe-{}", new_id()));
        fs::write(&probe, b"ok")
            .await
            .map_err(|error| StorageError::Unavailable(anyhow::anyhow!("{}: {error}", self.tmp.display())))?;
        let _ = fs::remove_file(&probe).await;
        Ok(())
    }

    async fn put(&self, key: &str, body: ByteStream, _size: Option<u64>) -> Result<u64, StorageError> {
        let target = self.blob_path(key)?;
        let (temp, size) = self.write_temp(body).await?;
        self.publish(temp, &target).await?;
        Ok(size)
    }

    async fn get(&self, key: &str, range: Option<BlobRange>) -> Result<BlobRead, StorageError> {
        let path = self.blob_path(key)?;
        let mut file = fs::File::open(&path).await.map_err(backend)?;
        let total_size = file.metadata().await.map_err(backend)?.len();
        let (start, length) = match range {
            Some(range) if range.end_inclusive < total_size => (range.start, range.len()),
            Some(_) => return Err(StorageError::InvalidRange),
            None => (0, total_size),
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await.map_err(backend)?;
        }
        let body = ReaderStream::with_capacity(file.take(length), READ_CHUNK);
        Ok(BlobRead { body: Box::pin(body), total_size, content_length: length })
    }

    async fn head(&self, key: &str) -> Result<BlobInfo, StorageError> {
        let meta = fs::metadata(self.blob_path(key)?).await.map_err(backend)?;
        Ok(BlobInfo { size: meta.len(), last_modified: modified(&meta) })
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.blob_path(key)?;
        match fs::remove_file(&path).await {
            Ok(()) => {
                self.prune_empty_dirs(path.parent()).await;
                Ok(())
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(backend(error)),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let source = self.blob_path(from)?;
        let target = self.blob_path(to)?;
        let temp = self.temp_path()?;
        let temp_for_copy = temp.to_path_buf();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::copy(&source, &temp_for_copy)?;
            std::fs::File::open(&temp_for_copy)?.sync_all()
        })
        .await
        .map_err(|error| StorageError::Backend(error.into()))?
        .map_err(backend)?;
        self.publish(temp, &target).await
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        let root = self.blobs.clone();
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        tokio::task::spawn_blocking(move || list_blocking(&root, &prefix, start_after.as_deref(), limit))
            .await
            .map_err(|error| StorageError::Backend(error.into()))?
    }

    async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        check_blob_key(key)?;
        let upload_id = new_id();
        let dir = self.multipart.join(&upload_id);
        fs::create_dir_all(&dir).await.map_err(backend)?;
        fs::write(dir.join(KEY_FILE), key.as_bytes()).await.map_err(backend)?;
        Ok(upload_id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        _size: Option<u64>,
    ) -> Result<PartInfo, StorageError> {
        check_blob_key(key)?;
        let dir = self.upload_dir(upload_id)?;
        if !fs::try_exists(dir.join(KEY_FILE)).await.map_err(backend)? {
            return Err(StorageError::NotFound);
        }
        let (temp, size) = self.write_temp(body).await?;
        let etag = new_id();
        let stale: Vec<PathBuf> = self
            .read_parts(upload_id)
            .await?
            .into_iter()
            .filter(|(part, _)| part.part_number == part_number)
            .map(|(_, path)| path)
            .collect();
        fs::rename(&temp, dir.join(format!("{part_number}-{etag}"))).await.map_err(backend)?;
        let _ = temp.keep();
        for path in stale {
            let _ = fs::remove_file(path).await;
        }
        Ok(PartInfo { part_number, etag, size })
    }

    async fn list_parts(&self, _key: &str, upload_id: &str) -> Result<Vec<PartInfo>, StorageError> {
        Ok(self.read_parts(upload_id).await?.into_iter().map(|(part, _)| part).collect())
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StorageError> {
        let target = self.blob_path(key)?;
        let stored = self.read_parts(upload_id).await?;
        let mut sources = Vec::with_capacity(parts.len());
        for wanted in parts {
            let found = stored
                .iter()
                .find(|(part, _)| part.part_number == wanted.part_number && part.etag == wanted.etag)
                .ok_or_else(|| {
                    StorageError::PartMismatch(format!("part {} is not stored with that ETag", wanted.part_number))
                })?;
            sources.push(found.1.clone());
        }
        let temp = self.temp_path()?;
        let temp_for_join = temp.to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            let mut out = std::fs::File::create(&temp_for_join).map_err(backend)?;
            for source in sources {
                // A part re-sent since the listing above was stored under another name, this one removed.
                let mut part = std::fs::File::open(source).map_err(|error| match error.kind() {
                    std::io::ErrorKind::NotFound => {
                        StorageError::PartMismatch("a part was replaced while the upload was being completed".into())
                    }
                    _ => backend(error),
                })?;
                std::io::copy(&mut part, &mut out).map_err(backend)?;
            }
            out.sync_all().map_err(backend)
        })
        .await
        .map_err(|error| StorageError::Backend(error.into()))??;
        self.publish(temp, &target).await?;
        let _ = fs::remove_dir_all(self.upload_dir(upload_id)?).await;
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<(), StorageError> {
        // An id this adapter never issued names no upload: aborting it succeeds, as for any unknown upload.
        let Ok(dir) = self.upload_dir(upload_id) else { return Ok(()) };
        match fs::remove_dir_all(dir).await {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(backend(error)),
            _ => Ok(()),
        }
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<OpenMultipart>, StorageError> {
        let mut entries = fs::read_dir(&self.multipart).await.map_err(backend)?;
        let mut uploads = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(backend)? {
            let Ok(key) = fs::read_to_string(entry.path().join(KEY_FILE)).await else {
                continue;
            };
            if !key.starts_with(prefix) {
                continue;
            }
            let initiated = entry.metadata().await.map(|m| modified(&m)).unwrap_or_else(|_| Utc::now());
            uploads.push(OpenMultipart { key, upload_id: entry.file_name().to_string_lossy().into_owned(), initiated });
        }
        uploads.sort_by(|a, b| a.key.cmp(&b.key).then(a.initiated.cmp(&b.initiated)));
        Ok(uploads)
    }

    async fn presign(&self, _: &str, _: PresignTarget, _: SigningWindow) -> Result<PresignedRequest, StorageError> {
        Err(StorageError::Unsupported("presigning"))
    }
}

/// One page of keys after `start_after`, in key order. The walk visits the
/// whole prefix (directory order is not key order) but keeps only the
/// smallest `limit + 1` keys, so a page costs memory by its size, not by the
/// store's; a blob deleted during the walk is skipped.
fn list_blocking(root: &Path, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
    let start = root.join(prefix_dir(prefix));
    let mut smallest: std::collections::BinaryHeap<(String, u64, chrono::DateTime<chrono::Utc>)> =
        std::collections::BinaryHeap::with_capacity(limit.saturating_add(2).min(4096));
    for entry in walkdir::WalkDir::new(&start).into_iter() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) if error.io_error().map(std::io::Error::kind) == Some(std::io::ErrorKind::NotFound) => {
                continue;
            }
            Err(error) => return Err(StorageError::Backend(error.into())),
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(root) else {
            continue;
        };
        let Some(key) = path_to_key(relative) else {
            continue;
        };
        if !key.starts_with(prefix) || start_after.is_some_and(|after| key.as_str() <= after) {
            continue;
        }
        if smallest.len() > limit && smallest.peek().is_some_and(|(largest, _, _)| key >= *largest) {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(error) if error.io_error().map(std::io::Error::kind) == Some(std::io::ErrorKind::NotFound) => continue,
            Err(error) => return Err(StorageError::Backend(error.into())),
        };
        smallest.push((key, meta.len(), modified(&meta)));
        if smallest.len() > limit.saturating_add(1) {
            smallest.pop();
        }
    }
    let mut keys: Vec<ListedBlob> = smallest
        .into_sorted_vec()
        .into_iter()
        .map(|(key, size, last_modified)| ListedBlob { key, size, last_modified })
        .collect();
    let more = keys.len() > limit;
    keys.truncate(limit);
    Ok(ListPage { next_start_after: more.then(|| keys.last().map(|b| b.key.clone())).flatten(), blobs: keys })
}

impl std::fmt::Debug for FsBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsBlobStore").field("blobs", &self.blobs).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upload_ids_cannot_escape() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::open(dir.path().to_path_buf()).await.expect("open");
        assert!(matches!(store.upload_dir("../../etc"), Err(StorageError::NotFound)));
        assert!(store.abort_multipart("k", "../x").await.is_ok(), "an id it never issued names no upload");
        assert!(dir.path().exists());
    }

    #[tokio::test]
    async fn abandoned_writes_leave_no_temp_files() {
        use futures::StreamExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(FsBlobStore::open(dir.path().to_path_buf()).await.expect("open"));
        let tmp = store.tmp.clone();
        let temp_files = || std::fs::read_dir(&tmp).expect("tmp").count();
        let chunk = || Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"part"));

        // A part whose upload is aborted while its body arrives.
        let upload = store.create_multipart("k").await.expect("create");
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        sender.unbounded_send(chunk()).expect("send");
        let part = tokio::spawn({
            let store = store.clone();
            let upload = upload.clone();
            async move { store.upload_part("k", &upload, 1, receiver.boxed(), None).await }
        });
        while temp_files() == 0 {
            tokio::task::yield_now().await;
        }
        store.abort_multipart("k", &upload).await.expect("abort");
        drop(sender);
        assert!(part.await.expect("join").is_err(), "the upload is gone");
        assert_eq!(temp_files(), 0, "the part's temp file went with it");

        // A put whose request is dropped mid-body (a client gone).
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        sender.unbounded_send(chunk()).expect("send");
        let put = tokio::spawn({
            let store = store.clone();
            async move { store.put("b/abandoned", receiver.boxed(), None).await }
        });
        while temp_files() == 0 {
            tokio::task::yield_now().await;
        }
        put.abort();
        assert!(put.await.is_err(), "cancelled");
        assert_eq!(temp_files(), 0, "the put's temp file went with it");
        drop(sender);
    }

    #[tokio::test]
    async fn pages_hold_the_smallest_keys_in_order() {
        use futures::StreamExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::open(dir.path().to_path_buf()).await.expect("open");
        let mut written = Vec::new();
        for n in [7, 3, 11, 0, 5, 9, 1] {
            let key = format!("b/{n:02}");
            let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x"))]).boxed();
            store.put(&key, body, Some(1)).await.expect("put");
            written.push(key);
        }
        written.sort();
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = list_blocking(&store.blobs, "b/", after.as_deref(), 3).expect("list");
            assert!(page.blobs.len() <= 3);
            listed.extend(page.blobs.iter().map(|b| b.key.clone()));
            match page.next_start_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(listed, written);
    }

    #[test]
    fn walk_of_missing_prefix_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let page = list_blocking(dir.path(), "nothing/here", None, 10).expect("list");
        assert!(page.blobs.is_empty());
    }
}
