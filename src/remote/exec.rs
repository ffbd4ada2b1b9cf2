//! The last look at a plugin executable before it runs: who may have written it, what
//! it is, and which exact file the kernel will execute.
//!
//! A plugin file must be a regular file, executable, not writable by group or others,
//! not setuid or setgid, owned by root or the gateway's user, and every directory above
//! it must be writable only by root or the gateway's user (or be sticky, like `/tmp`, so
//! nobody else can replace entries in it). It must be an ELF executable for this
//! platform or a `#!` script: anything else would otherwise be handed to `/bin/sh` by
//! `execvp`'s ENOEXEC fallback.
//!
//! [`open`] applies these rules to an opened descriptor, not to a path, right before
//! spawning. An ELF file is then executed through that descriptor (`/proc/self/fd/N`,
//! what `fexecve` does), so the file that was checked is the file that runs. A script
//! is executed by path, because the kernel hands the interpreter a path; the directory
//! rules above are what keep that path from being swapped.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What kind of executable a plugin file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An ELF executable for this platform.
    Elf,
    /// A `#!` script.
    Script,
}

/// A plugin executable opened and checked; it stays open until the process is spawned.
#[derive(Debug)]
pub struct Checked {
    file: File,
    path: PathBuf,
    kind: Kind,
}

impl Checked {
    /// The program to hand to `exec`: the descriptor for ELF files (where `/proc` is
    /// mounted), the path for scripts.
    pub fn program(&self) -> PathBuf {
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
        if self.kind == Kind::Elf && Path::new("/proc/self/fd").is_dir() {
            by_fd
        } else {
            self.path.clone()
        }
    }

    /// The checked path (the plugin's `argv[0]`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// ELF or script.
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

/// Opens `path` without following a final symlink and applies every rule to the
/// opened file and the directories above it.
pub fn open(path: &Path) -> Result<Checked, String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    check_file(&meta, path)?;
    check_parents(path)?;
    let mut header = [0u8; 20];
    let n = read_up_to(&mut file, &mut header)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let kind = kind(&header[..n]).map_err(|found| {
        format!(
            "{} is {found}; a plugin must be an ELF executable for {} or a #! script",
            path.display(),
            std::env::consts::ARCH
        )
    })?;
    Ok(Checked {
        file,
        path: path.to_path_buf(),
        kind,
    })
}

/// Applies every rule to the file at `path` (used by `check` and at configuration
/// time; [`open`] repeats it on the descriptor right before exec).
pub fn inspect(path: &Path) -> Result<Kind, String> {
    open(path).map(|c| c.kind)
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn gateway_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Mode, owner and type rules for the plugin file itself.
fn check_file(meta: &Metadata, path: &Path) -> Result<(), String> {
    let p = path.display();
    if !meta.is_file() {
        return Err(format!("{p} is not a regular file"));
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        return Err(format!("{p} is not executable"));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "{p} is writable by group or others (mode {:o}); chmod go-w it",
            mode & 0o7777
        ));
    }
    if mode & 0o6000 != 0 {
        return Err(format!(
            "{p} is setuid or setgid (mode {:o}); plugins never run with raised privileges",
            mode & 0o7777
        ));
    }
    let uid = meta.uid();
    if uid != 0 && uid != gateway_uid() {
        return Err(format!(
            "{p} is owned by uid {uid}, not by root or the gateway's user (uid {})",
            gateway_uid()
        ));
    }
    Ok(())
}

/// Every directory above `path` must be writable only by root or the gateway's user,
/// unless it is sticky and root-owned (`/tmp`), where nobody can replace others' entries.
fn check_parents(path: &Path) -> Result<(), String> {
    for dir in path.ancestors().skip(1) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let meta =
            std::fs::metadata(dir).map_err(|e| format!("cannot stat {}: {e}", dir.display()))?;
        let mode = meta.permissions().mode();
        let uid = meta.uid();
        if uid != 0 && uid != gateway_uid() {
            return Err(format!(
                "directory {} above the plugin is owned by uid {uid}, not by root or the gateway's user (uid {})",
                dir.display(),
                gateway_uid()
            ));
        }
        let sticky_root = mode & 0o1000 != 0 && uid == 0;
        if mode & 0o022 != 0 && !sticky_root {
            return Err(format!(
                "directory {} above the plugin is writable by group or others (mode {:o}), so the plugin could be replaced",
                dir.display(),
                mode & 0o7777
            ));
        }
    }
    Ok(())
}

/// The ELF machine number of this platform.
fn elf_machine() -> Option<u16> {
    match std::env::consts::ARCH {
        "x86_64" => Some(62),
        "aarch64" => Some(183),
        "riscv64" => Some(243),
        "x86" => Some(3),
        "arm" => Some(40),
        _ => None,
    }
}

/// Classifies a file by its first bytes; the error says what was found. The OCI pull
/// uses it too, so a plugin that could never run is refused before it is cached.
pub fn kind(header: &[u8]) -> Result<Kind, String> {
    if header.starts_with(b"#!") {
        return Ok(Kind::Script);
    }
    if !header.starts_with(b"\x7fELF") {
        let what = match header {
            [0x1f, 0x8b, ..] => "gzip data".to_string(),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd data".to_string(),
            [b'P', b'K', 3, 4, ..] => "a zip archive".to_string(),
            [] => "empty".to_string(),
            _ if header.len() >= 6 && &header[..5] == b"ustar" => "a tar archive".to_string(),
            _ => format!(
                "neither ELF nor a script (starts with {})",
                header
                    .iter()
                    .take(4)
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        };
        return Err(what);
    }
    if header.len() < 20 {
        return Err("a truncated ELF header".into());
    }
    let pointer_bits = std::mem::size_of::<usize>() * 8;
    let class_bits = match header[4] {
        1 => 32,
        2 => 64,
        _ => 0,
    };
    let little = header[5] == 1;
    let read16 = |at: usize| {
        let pair = [header[at], header[at + 1]];
        if little {
            u16::from_le_bytes(pair)
        } else {
            u16::from_be_bytes(pair)
        }
    };
    let e_type = read16(16);
    let machine = read16(18);
    if class_bits != pointer_bits || little != cfg!(target_endian = "little") {
        return Err(format!(
            "an ELF file for another platform ({class_bits}-bit, {} endian)",
            if little { "little" } else { "big" }
        ));
    }
    if Some(machine) != elf_machine() {
        return Err(format!(
            "an ELF file for another machine (e_machine {machine})"
        ));
    }
    if e_type != 2 && e_type != 3 {
        return Err(format!(
            "an ELF file that is not an executable (e_type {e_type})"
        ));
    }
    Ok(Kind::Elf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn kinds() {
        let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(kind(&own[..20]), Ok(Kind::Elf));
        assert_eq!(kind(b"#!/bin/sh\n"), Ok(Kind::Script));
        assert!(kind(&[0x1f, 0x8b, 8, 0]).unwrap_err().contains("gzip"));
        assert!(kind(b"").unwrap_err().contains("empty"));
        let mut foreign = own[..20].to_vec();
        foreign[18] = 0xb7;
        foreign[19] = 0x00; // aarch64 or x86_64, whichever this is not
        if elf_machine() == Some(183) {
            foreign[18] = 62;
        }
        assert!(kind(&foreign).unwrap_err().contains("another machine"));
        let mut object = own[..20].to_vec();
        object[16] = 1;
        object[17] = 0;
        assert!(kind(&object).unwrap_err().contains("not an executable"));
    }

    #[test]
    fn file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let ok = write(dir.path(), "ok", b"#!/bin/sh\n", 0o755);
        assert_eq!(inspect(&ok), Ok(Kind::Script));
        let world = write(dir.path(), "world", b"#!/bin/sh\n", 0o777);
        assert!(
            inspect(&world)
                .unwrap_err()
                .contains("writable by group or others")
        );
        let setuid = write(dir.path(), "setuid", b"#!/bin/sh\n", 0o4755);
        assert!(inspect(&setuid).unwrap_err().contains("setuid"));
        let blob = write(dir.path(), "blob", &[0x1f, 0x8b, 8, 0, 0], 0o755);
        assert!(inspect(&blob).unwrap_err().contains("gzip data"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&ok, &link).unwrap();
        assert!(
            inspect(&link).is_err(),
            "a final symlink must not be followed"
        );
        let open_dir = dir.path().join("open");
        std::fs::create_dir(&open_dir).unwrap();
        let inside = write(&open_dir, "p", b"#!/bin/sh\n", 0o755);
        std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(inspect(&inside).unwrap_err().contains("directory"));
        std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        // Sticky but not root-owned (unless the tests run as root, when it is allowed).
        let result = inspect(&inside);
        assert_eq!(result.is_ok(), gateway_uid() == 0, "{result:?}");
    }

    #[test]
    fn elf_runs_through_its_descriptor() {
        let own = std::env::current_exe().unwrap();
        let checked = open(&own).unwrap();
        assert_eq!(checked.kind(), Kind::Elf);
        assert!(checked.program().starts_with("/proc/self/fd/"));
    }
}
