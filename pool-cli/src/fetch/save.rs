//! Saving bodies: where each URL's body goes (`-o FILE`, `-O`, `--output-dir DIR`) and the
//! partial file it is streamed into — a temporary name in the target's directory, renamed over
//! the target only when the whole body has arrived, removed otherwise.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Url;

/// The file name `-O` saves `url` under: its last path segment, or `index.html` when that is
/// empty, `.` or `..`.
pub fn remote_name(url: &Url) -> String {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    match last {
        "" | "." | ".." => "index.html".to_string(),
        name => name.to_string(),
    }
}

/// Picks a target per URL (in argument order): `outputs` pairs with the URLs when given, else
/// remote names when `remote` is set; relative targets go under `dir`. Two URLs with the same
/// remote name get `name`, `name.1`, `name.2`, … (as wget does) instead of overwriting each
/// other.
pub fn plan(
    urls: &[Option<Url>],
    outputs: &[PathBuf],
    remote: bool,
    dir: Option<&Path>,
) -> Vec<Option<PathBuf>> {
    let under = |p: PathBuf| match dir {
        Some(d) if p.is_relative() => d.join(p),
        _ => p,
    };
    if !outputs.is_empty() {
        return outputs.iter().cloned().map(under).map(Some).collect();
    }
    if !remote {
        return vec![None; urls.len()];
    }
    let mut taken = HashSet::new();
    urls.iter()
        .map(|url| {
            let base = remote_name(url.as_ref()?);
            let mut name = base.clone();
            let mut n = 0;
            while !taken.insert(name.clone()) {
                n += 1;
                name = format!("{base}.{n}");
            }
            Some(under(PathBuf::from(name)))
        })
        .collect()
}

/// A body being written: a temporary file beside its target. [`Partial::commit`] renames it
/// over the target; dropping it uncommitted removes it.
#[derive(Debug)]
pub struct Partial {
    file: File,
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Partial {
    /// Creates `.<name>.pool-<pid>-<n>.part` in the target's directory.
    pub fn create(target: &Path) -> io::Result<Partial> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::other("the output path has no file name"))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(
            ".pool-{}-{}.part",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let temp = target.with_file_name(temp_name);
        let file = File::options().write(true).create_new(true).open(&temp)?;
        Ok(Partial {
            file,
            temp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    /// The whole body arrived: the temporary file becomes the target.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        self.file.flush()?;
        fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_and_duplicates() {
        let urls: Vec<Option<Url>> = [
            "http://h/a/b.txt",
            "http://h/x/b.txt",
            "http://h/",
            "http://h/dir/",
        ]
        .iter()
        .map(|u| Url::parse(u).ok())
        .chain([None])
        .collect();
        let plan = plan(&urls, &[], true, Some(Path::new("out")));
        let names: Vec<Option<String>> = plan
            .iter()
            .map(|p| p.as_ref().map(|p| p.display().to_string()))
            .collect();
        assert_eq!(
            names,
            [
                Some("out/b.txt".into()),
                Some("out/b.txt.1".into()),
                Some("out/index.html".into()),
                Some("out/index.html.1".into()),
                None
            ]
        );
    }

    #[test]
    fn an_uncommitted_partial_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("pool-partial-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("body");
        let mut p = Partial::create(&target).unwrap();
        p.write_all(b"half").unwrap();
        drop(p);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        let mut p = Partial::create(&target).unwrap();
        p.write_all(b"whole").unwrap();
        assert_eq!(p.commit().unwrap(), target);
        assert_eq!(fs::read(&target).unwrap(), b"whole");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
