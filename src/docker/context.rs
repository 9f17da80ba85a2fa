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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tar `context` for a build of `dockerfile`.
pub fn pack(context: &Path, dockerfile: &Path) -> Result<Packed, ContextError> {
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

    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let mut entries = 0;
    let mut excluded = 0;
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
        let meta = entry.path().symlink_metadata().map_err(io(entry.path()))?;
        let mut h = header_for(&meta);
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, format!("{rel}/"), std::io::empty())
                .map_err(io(entry.path()))?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(io(entry.path()))?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &rel, &target)
                .map_err(io(entry.path()))?;
        } else if ft.is_file() {
            let f = std::fs::File::open(entry.path()).map_err(io(entry.path()))?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            b.append_data(&mut h, &rel, f).map_err(io(entry.path()))?;
            dockerfile_sent |= is_dockerfile;
        } else {
            // Sockets, FIFOs, devices: Docker skips them too.
            continue;
        }
        entries += 1;
    }

    let dockerfile_name = match (dockerfile_rel, dockerfile_sent) {
        (Some(rel), true) => rel,
        _ => {
            // Outside the context (or not a regular file inside it): send it under a generated name.
            let text = std::fs::read(&dockerfile_abs).map_err(io(&dockerfile_abs))?;
            let name = format!(
                ".pake-dockerfile-{}",
                &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&text))[..12]
            );
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(text.len() as u64);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, &name, text.as_slice())
                .map_err(io(&dockerfile_abs))?;
            entries += 1;
            name
        }
    };
    let tar = b.into_inner().map_err(io(&context))?;
    Ok(Packed {
        tar,
        dockerfile: dockerfile_name,
        ignore_file: ignore.path,
        entries,
        excluded,
    })
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
