//! The build context: the directory tarred in-process, as `docker build` does,
//! honouring the `.dockerignore` that applies (see [`super::dockerignore`]).
//!
//! Like the Docker CLI: entries are owned by 0:0 in the archive, symlinks are
//! stored as links (never followed, so a link cannot smuggle a file from
//! outside the context), sockets and FIFOs are skipped, and the Dockerfile is
//! always sent even when an ignore pattern matches it. A Dockerfile outside
//! the context is added under a generated name.

use std::path::{Path, PathBuf};

use super::dockerignore::{IgnoreError, IgnoreFile};

/// A packed context, ready to send to the engine.
#[derive(Debug)]
pub struct Packed {
    pub tar: Vec<u8>,
    /// Path of the Dockerfile inside the archive (the build API's `dockerfile`).
    pub dockerfile: String,
    pub ignore_file: Option<PathBuf>,
    /// Files, links and directories sent.
    pub entries: usize,
    /// Paths left out by the ignore file.
    pub excluded: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("Dockerfile {} not found", .0.display())]
    NoDockerfile(PathBuf),
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ContextError {
    /// The engine stopped reading (the build failed or was cancelled): not
    /// the context's fault.
    pub fn engine_stopped(&self) -> bool {
        matches!(self, ContextError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What goes into the context archive, decided before any file is read:
/// the walk and the ignore rules, without the file contents. Memory is
/// proportional to the number of entries, not to their size.
#[derive(Debug)]
pub struct Plan {
    items: Vec<Item>,
    /// A Dockerfile from outside the context: (name in the archive, bytes).
    extra: Option<(String, Vec<u8>)>,
    context: PathBuf,
    /// Path of the Dockerfile inside the archive (the build API's `dockerfile`).
    pub dockerfile: String,
    pub ignore_file: Option<PathBuf>,
    /// Files, links and directories sent.
    pub entries: usize,
    /// Paths left out by the ignore file.
    pub excluded: usize,
    /// Bytes of file content the archive carries (progress).
    pub bytes: u64,
}

#[derive(Debug)]
struct Item {
    rel: String,
    path: PathBuf,
    kind: ItemKind,
}

#[derive(Debug)]
enum ItemKind {
    Dir,
    Symlink,
    File,
}

/// Tar `context` for a build of `dockerfile`, in memory (small contexts, tests).
pub fn pack(context: &Path, dockerfile: &Path) -> Result<Packed, ContextError> {
    let plan = plan(context, dockerfile)?;
    let tar = plan.write_to(Vec::new())?;
    Ok(Packed {
        tar,
        dockerfile: plan.dockerfile,
        ignore_file: plan.ignore_file,
        entries: plan.entries,
        excluded: plan.excluded,
    })
}

/// Walk `context` with its ignore file and decide what the archive holds.
pub fn plan(context: &Path, dockerfile: &Path) -> Result<Plan, ContextError> {
    let context = context
        .canonicalize()
        .map_err(|_| ContextError::NotADirectory(context.to_path_buf()))?;
    if !context.is_dir() {
        return Err(ContextError::NotADirectory(context));
    }
    let dockerfile_abs = dockerfile
        .canonicalize()
        .map_err(|_| ContextError::NoDockerfile(dockerfile.to_path_buf()))?;
    let ignore = IgnoreFile::for_build(&dockerfile_abs, &context)?;
    let patterns = &ignore.patterns;
    let dockerfile_rel = dockerfile_abs.strip_prefix(&context).ok().map(slash_path);

    let mut items = Vec::new();
    let mut excluded = 0;
    let mut bytes = 0u64;
    let mut dockerfile_sent = false;
    let mut walk = walkdir::WalkDir::new(&context)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| ContextError::Io {
            path: e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| context.clone()),
            source: e.into(),
        })?;
        if entry.depth() == 0 {
            continue;
        }
        let rel = slash_path(
            entry
                .path()
                .strip_prefix(&context)
                .expect("walk stays inside"),
        );
        let ft = entry.file_type();
        let is_dockerfile = dockerfile_rel.as_deref() == Some(rel.as_str());
        if !is_dockerfile && patterns.excludes(&rel) {
            excluded += 1;
            // Without exceptions nothing below an excluded directory can come back.
            if ft.is_dir() && !patterns.has_exceptions() {
                walk.skip_current_dir();
            }
            continue;
        }
        let kind = if ft.is_dir() {
            ItemKind::Dir
        } else if ft.is_symlink() {
            ItemKind::Symlink
        } else if ft.is_file() {
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            dockerfile_sent |= is_dockerfile;
            ItemKind::File
        } else {
            // Sockets, FIFOs, devices: Docker skips them too.
            continue;
        };
        items.push(Item {
            rel,
            path: entry.path().to_path_buf(),
            kind,
        });
    }

    let (dockerfile_name, extra) = match (dockerfile_rel, dockerfile_sent) {
        (Some(rel), true) => (rel, None),
        _ => {
            // Outside the context (or not a regular file inside it): send it under a generated name.
            let text = std::fs::read(&dockerfile_abs).map_err(io(&dockerfile_abs))?;
            let name = format!(
                ".pake-dockerfile-{}",
                &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&text))[..12]
            );
            bytes += text.len() as u64;
            (name.clone(), Some((name, text)))
        }
    };
    Ok(Plan {
        entries: items.len() + usize::from(extra.is_some()),
        items,
        extra,
        context,
        dockerfile: dockerfile_name,
        ignore_file: ignore.path,
        excluded,
        bytes,
    })
}

impl Plan {
    /// Write the archive to `w` (a Vec, or the stream to the engine), one
    /// file at a time: memory stays bounded whatever the context's size.
    pub fn write_to<W: std::io::Write>(&self, w: W) -> Result<W, ContextError> {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        for it in &self.items {
            let meta = it.path.symlink_metadata().map_err(io(&it.path))?;
            let mut h = header_for(&meta);
            match it.kind {
                ItemKind::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{}/", it.rel), std::io::empty())
                        .map_err(io(&it.path))?;
                }
                ItemKind::Symlink => {
                    let target = std::fs::read_link(&it.path).map_err(io(&it.path))?;
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, &it.rel, &target)
                        .map_err(io(&it.path))?;
                }
                ItemKind::File => {
                    use std::io::Read;
                    let f = std::fs::File::open(&it.path).map_err(io(&it.path))?;
                    let len = meta.len();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(len);
                    // A file that grows while it is sent must not corrupt the archive.
                    let mut data = f.take(len);
                    b.append_data(&mut h, &it.rel, &mut data)
                        .map_err(io(&it.path))?;
                    if data.limit() != 0 {
                        return Err(ContextError::Io {
                            path: it.path.clone(),
                            source: std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the file shrank while it was being sent",
                            ),
                        });
                    }
                }
            }
        }
        if let Some((name, text)) = &self.extra {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(text.len() as u64);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, text.as_slice())
                .map_err(io(&self.context))?;
        }
        b.into_inner().map_err(io(&self.context))
    }

    /// The archive as a stream for the engine's request body, written by a
    /// blocking task through a bounded channel (at most `CHANNEL_CHUNKS` chunks
    /// of `CHUNK` bytes in flight). `sent` is told the bytes written so far.
    /// The task's result says why the stream ended early.
    pub fn into_stream(
        self,
        sent: impl FnMut(u64) + Send + 'static,
    ) -> (
        impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
        tokio::task::JoinHandle<Result<(), ContextError>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
        let task = tokio::task::spawn_blocking(move || {
            let w = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
                total: 0,
                sent: Box::new(sent),
            };
            match self
                .write_to(w)
                .and_then(|mut w| w.flush_chunk().map_err(io(&self.context)))
            {
                Ok(()) => Ok(()),
                Err(e) => {
                    // The request body fails too, so the engine sees a broken context.
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    Err(e)
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        (stream, task)
    }
}

/// Bytes per chunk sent to the engine, and chunks buffered at most.
const CHUNK: usize = 256 * 1024;
const CHANNEL_CHUNKS: usize = 8;

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
    total: u64,
    sent: Box<dyn FnMut(u64) + Send>,
}

impl ChannelWriter {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.total += chunk.len() as u64;
        self.tx
            .blocking_send(Ok(bytes::Bytes::from(chunk)))
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the engine stopped reading the build context",
                )
            })?;
        (self.sent)(self.total);
        Ok(())
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.flush_chunk()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn header_for(meta: &std::fs::Metadata) -> tar::Header {
    use std::os::unix::fs::MetadataExt;
    let mut h = tar::Header::new_gnu();
    h.set_mode(meta.mode() & 0o7777);
    h.set_mtime(meta.mtime().max(0) as u64);
    // The CLI sends everything as root-owned; the Dockerfile's COPY --chown decides ownership.
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn slash_path(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Packed) -> Vec<String> {
        let mut a = tar::Archive::new(p.tar.as_slice());
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn honours_dockerignore_and_always_sends_the_dockerfile() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join(".git/objects")).unwrap();
        std::fs::write(r.join(".git/HEAD"), "ref").unwrap();
        std::fs::write(r.join(".env"), "X=1").unwrap();
        std::fs::write(r.join(".env.example"), "X=").unwrap();
        std::fs::create_dir_all(r.join("src/sub")).unwrap();
        std::fs::write(r.join("src/main.go"), "package main").unwrap();
        std::fs::write(r.join("src/sub/key.pem"), "k").unwrap();
        std::fs::write(r.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("link")).unwrap();
        std::fs::write(
            r.join(".dockerignore"),
            ".git\n.env*\n!.env.example\n**/*.pem\nDockerfile\n",
        )
        .unwrap();
        let p = pack(r, &r.join("Dockerfile")).unwrap();
        let n = names(&p);
        assert!(n.contains(&"Dockerfile".to_string()), "{n:?}");
        assert!(n.contains(&"src/main.go".to_string()), "{n:?}");
        assert!(n.contains(&".env.example".to_string()), "{n:?}");
        assert!(!n.iter().any(|x| x.starts_with(".git")), "{n:?}");
        assert!(!n.contains(&".env".to_string()), "{n:?}");
        assert!(!n.iter().any(|x| x.ends_with(".pem")), "{n:?}");
        assert_eq!(p.dockerfile, "Dockerfile");
        // The link is stored as a link, not as the content of /etc/passwd.
        let mut a = tar::Archive::new(p.tar.as_slice());
        let link = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_string_lossy() == "link")
            .unwrap();
        assert_eq!(link.header().entry_type(), tar::EntryType::Symlink);
        assert_eq!(link.header().uid().unwrap(), 0);
    }

    #[tokio::test]
    async fn the_stream_is_the_same_archive() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::write(r.join("Dockerfile"), "FROM scratch\n").unwrap();
        // Larger than a few chunks, so the channel fills and drains.
        std::fs::write(r.join("big"), vec![7u8; 3 * CHUNK + 123]).unwrap();
        let whole = pack(r, &r.join("Dockerfile")).unwrap().tar;
        let plan = plan(r, &r.join("Dockerfile")).unwrap();
        assert_eq!(plan.bytes, (3 * CHUNK + 123 + 13) as u64);
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let s2 = seen.clone();
        let (stream, task) = plan.into_stream(move |n| {
            s2.store(n, std::sync::atomic::Ordering::Relaxed);
        });
        use futures::StreamExt;
        let chunks: Vec<_> = stream.collect().await;
        task.await.unwrap().unwrap();
        let streamed: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        assert_eq!(streamed, whole);
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::Relaxed),
            whole.len() as u64
        );
    }

    #[test]
    fn dockerfile_outside_the_context_gets_a_generated_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("ctx")).unwrap();
        std::fs::write(d.path().join("ctx/a"), "a").unwrap();
        std::fs::write(d.path().join("Dockerfile.x"), "FROM scratch\n").unwrap();
        let p = pack(&d.path().join("ctx"), &d.path().join("Dockerfile.x")).unwrap();
        assert!(p.dockerfile.starts_with(".pake-dockerfile-"));
        assert!(names(&p).contains(&p.dockerfile));
        assert!(matches!(
            pack(&d.path().join("nope"), &d.path().join("Dockerfile.x")),
            Err(ContextError::NotADirectory(_))
        ));
    }
}
