//! Where `sallyport up` keeps its own cluster. initdb and postgres refuse to run as root, so as root
//! the cluster runs as the `postgres` user, which must be able to enter its directory: when it
//! cannot enter `<data-dir>` (`/root`, a `mktemp -d` directory), the cluster lives in a directory of
//! that user's (`~postgres/sallyport/<hash>`, else `/var/tmp/sallyport/<hash>`) and
//! `<data-dir>/postgres` links to it, so the next `up` and the admin verbs find it there.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use store::local_pg;

use crate::data_dir;

/// The cluster's directory, and why it is not `<data-dir>/postgres` when it is not.
pub struct Place {
    pub dir: PathBuf,
    pub moved_because: Option<String>,
}

fn as_postgres(test: &[&str], path: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test"])
        .args(test)
        .arg(path)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The outermost directory on the way to `dir` that the `postgres` user cannot enter.
fn blocking_dir(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().collect::<Vec<_>>().into_iter().rev().find(|d| !as_postgres(&["-x"], d)).map(Path::to_owned)
}

fn postgres_home() -> Option<PathBuf> {
    let out = Command::new("getent").args(["passwd", "postgres"]).output().ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.trim_end().split(':').nth(5).filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// `data_dir` is absolute. Creates nothing unless the cluster has to move.
pub fn place(data_dir: &Path) -> Result<Place, String> {
    let link = data_dir::cluster_dir(data_dir);
    let here = Place { dir: link.clone(), moved_because: None };
    if !local_pg::is_root() {
        return Ok(here);
    }
    if postgres_home().is_none() {
        return Err("as root, `sallyport up` runs its cluster as the `postgres` user (initdb and postgres refuse \
                    root), and there is none: create it (useradd --system --create-home --home-dir \
                    /var/lib/postgresql postgres), run `sallyport up` as an ordinary user, or set DATABASE_URL"
            .into());
    }
    // a cluster made before, here or where the link points
    if link.join("data").join("PG_VERSION").exists() {
        let dir = std::fs::canonicalize(&link).map_err(|e| format!("cannot resolve {}: {e}", link.display()))?;
        let moved_because = (dir != link).then(|| format!("linked from {}", link.display()));
        return Ok(Place { dir, moved_because });
    }
    let Some(blocked) = blocking_dir(data_dir) else { return Ok(here) };
    let hash = Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    let name: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let base = postgres_home()
        .into_iter()
        .chain([PathBuf::from("/var/tmp")])
        .find(|b| as_postgres(&["-w"], b) || as_postgres(&["-w"], &b.join("sallyport")))
        .ok_or_else(|| {
            format!(
                "the cluster runs as the `postgres` user (initdb and postgres refuse root), which cannot enter {} \
                 and has no directory of its own to keep it in: let it in (chmod o+x {}), give --data-dir a \
                 directory it can enter, run `sallyport up` as an ordinary user, or set DATABASE_URL",
                blocked.display(),
                blocked.display()
            )
        })?
        .join("sallyport");
    let dir = base.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let _ = Command::new("chown").args(["postgres"]).arg(&base).arg(&dir).status();
    // a directory left by an initdb that failed here holds no data: the link replaces it
    if link.is_dir() && !link.is_symlink() && !link.join("data").exists() {
        std::fs::remove_dir_all(&link).map_err(|e| format!("cannot remove {}: {e}", link.display()))?;
    }
    if link.is_symlink() {
        std::fs::remove_file(&link).map_err(|e| format!("cannot replace {}: {e}", link.display()))?;
    }
    std::os::unix::fs::symlink(&dir, &link).map_err(|e| format!("cannot link {}: {e}", link.display()))?;
    Ok(Place {
        dir,
        moved_because: Some(format!(
            "linked from {}: the `postgres` user, which runs it, cannot enter {}",
            link.display(),
            blocked.display()
        )),
    })
}
