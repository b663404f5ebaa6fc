//! Scratch filesystems for fault tests: a loop-mounted ext4 image (power
//! cut with `xfs_io -x -c shutdown`, EIO) and a small tmpfs (full disk).
//!
//! Mounting needs root, a loop device and the tools; when any is missing the
//! constructor returns why, and the test prints it and skips. Guards unmount
//! on drop, also when the test fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A mounted filesystem, unmounted when dropped.
pub struct Mount {
    _tmp: tempfile::TempDir,
    image: Option<PathBuf>,
    mnt: PathBuf,
    mounted: bool,
}

impl Mount {
    /// An ext4 image of `mib` MiB on a loop device.
    pub fn ext4(mib: u64) -> Result<Self, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        if !Path::new("/dev/loop-control").exists() {
            return Err("no loop devices (/dev/loop-control missing)".into());
        }
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = tmp.path().join("fs.img");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
        let f = std::fs::File::create(&image).map_err(|e| e.to_string())?;
        f.set_len(mib << 20).map_err(|e| e.to_string())?;
        run("mkfs.ext4", &["-q", "-F", path(&image)])?;
        let mut m = Self {
            _tmp: tmp,
            image: Some(image),
            mnt,
            mounted: false,
        };
        m.mount()?;
        Ok(m)
    }

    /// A tmpfs of `mib` MiB.
    pub fn tmpfs(mib: u64) -> Result<Self, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
        let size = format!("size={mib}m");
        run("mount", &["-t", "tmpfs", "-o", &size, "tmpfs", path(&mnt)])?;
        Ok(Self {
            _tmp: tmp,
            image: None,
            mnt,
            mounted: true,
        })
    }

    /// Whether `xfs_io` can cut the power; the reason if not.
    pub fn check_xfs_io() -> Result<(), String> {
        run("xfs_io", &["-V"]).map_err(|e| format!("{e} (install xfsprogs)"))
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }

    fn mount(&mut self) -> Result<(), String> {
        let image = self.image.as_ref().ok_or("a tmpfs cannot be remounted")?;
        run("mount", &["-o", "loop", path(image), path(&self.mnt)])?;
        self.mounted = true;
        Ok(())
    }

    /// Cuts the power: the filesystem stops, losing what was not synced, and
    /// every later I/O fails with EIO.
    pub fn power_cut(&self) {
        run("xfs_io", &["-x", "-c", "shutdown", path(&self.mnt)]).expect("xfs_io shutdown");
    }

    pub fn unmount(&mut self) {
        if self.mounted {
            if run("umount", &[path(&self.mnt)]).is_err() {
                let _ = run("umount", &["-l", path(&self.mnt)]);
            }
            self.mounted = false;
        }
    }

    /// Unmounts and mounts the image again, as after a reboot.
    pub fn remount(&mut self) {
        self.unmount();
        self.mount().expect("remount");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.unmount();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A fault test that cannot run here (no root, no loop devices, no
/// `xfs_io`) skips, saying why; under CI (`CI=true`, where `.ci/run`
/// installs what it needs) it fails instead, so a missing tool cannot pass
/// as a green run.
pub fn skip(test: &str, why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the {test} test cannot run under CI: {why}"
    );
    eprintln!("SKIPPED {test} test: {why}");
}
