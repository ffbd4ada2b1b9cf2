//! Unit tests of [`super::View`]: layering, whiteouts, links and every hostile entry.

use super::*;
use tar::EntryType;

/// One tar entry to write; names go in raw, so hostile ones are possible.
pub enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Kind(&'a str, EntryType),
}

fn header(name: &str, kind: EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o755);
    h
}

pub fn tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (mut h, data): (tar::Header, &[u8]) = match e {
            E::File(n, d) => (header(n, EntryType::Regular, d.len() as u64), d),
            E::Dir(n) => (header(n, EntryType::Directory, 0), b""),
            E::Sym(n, t) | E::Hard(n, t) => {
                let kind = if matches!(e, E::Sym(..)) {
                    EntryType::Symlink
                } else {
                    EntryType::Link
                };
                let mut h = header(n, kind, 0);
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
                (h, b"")
            }
            E::Kind(n, k) => (header(n, *k, 0), b""),
        };
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

const LIMITS: Limits = Limits {
    max_file: 1 << 20,
    max_unpacked: 4 << 20,
    max_entries: 1000,
};

fn view(dir: &tempfile::TempDir, blobs: &[Vec<u8>]) -> Result<View, ExtractError> {
    let layers = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let path = dir.path().join(format!("layer{i}"));
            std::fs::write(&path, b).unwrap();
            Layer {
                path,
                digest: format!("sha256:layer{i}"),
            }
        })
        .collect();
    View::scan(layers, LIMITS)
}

fn read(v: &View, path: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    v.copy(path, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn later_layers_win_and_whiteouts_hide() {
    let dir = tempfile::tempdir().unwrap();
    let lower = tar(&[
        E::Dir("./"),
        E::File("./plugin", b"#!old"),
        E::File("etc/a", b"a"),
        E::File("opt/x/1", b"1"),
        E::File("gone", b"g"),
    ]);
    let upper = tar(&[
        E::File("plugin", b"#!new"),
        E::File("etc/.wh.a", b""),
        E::File("opt/x/.wh..wh..opq", b""),
        E::File("opt/x/2", b"2"),
        E::File(".wh.gone", b""),
    ]);
    let v = view(&dir, &[gz(&lower), upper]).unwrap();
    assert_eq!(read(&v, "/plugin").unwrap(), b"#!new");
    assert_eq!(read(&v, "opt/x/2").unwrap(), b"2");
    for hidden in ["/etc/a", "/opt/x/1", "/gone"] {
        assert!(
            read(&v, hidden).unwrap_err().contains("does not exist"),
            "{hidden}"
        );
    }
}

#[test]
fn symlinks_resolve_inside_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let layer = tar(&[
        E::File("usr/bin/real", b"#!x"),
        E::Sym("bin", "usr/bin"),
        E::Sym("plugin", "/bin/real"),
        E::Sym("rel", "usr/../bin/../bin/real"),
        E::Sym("escape", "../../../etc/passwd"),
        E::Sym("loop1", "loop2"),
        E::Sym("loop2", "/loop1"),
        E::Hard("hard", "usr/bin/real"),
        E::Hard("hardout", "../../bin/sh"),
        E::Hard("hardmissing", "nope"),
    ]);
    let v = view(&dir, &[layer]).unwrap();
    assert_eq!(read(&v, "/plugin").unwrap(), b"#!x");
    assert_eq!(read(&v, "/rel").unwrap(), b"#!x");
    assert_eq!(read(&v, "/hard").unwrap(), b"#!x");
    let escape = read(&v, "/escape").unwrap_err();
    assert!(escape.contains("above the image root"), "{escape}");
    let looped = read(&v, "/loop1").unwrap_err();
    assert!(looped.contains("symlinks"), "{looped}");
    let out = read(&v, "/hardout").unwrap_err();
    assert!(
        out.contains("hardlink") && out.contains("climbs out"),
        "{out}"
    );
    assert!(read(&v, "/hardmissing").unwrap_err().contains("hardlink"));
    assert!(read(&v, "/usr/bin").unwrap_err().contains("is a directory"));
    assert!(
        read(&v, "/usr/bin/real/x")
            .unwrap_err()
            .contains("not a directory")
    );
}

#[test]
fn hostile_names_refuse_the_image() {
    let dir = tempfile::tempdir().unwrap();
    for (name, found) in [
        ("../../etc/cron.d/x", "climbs out"),
        ("a/../../x", "climbs out"),
        ("/etc/passwd", "absolute"),
    ] {
        let err = view(&dir, &[tar(&[E::File(name, b"#!x")])]).unwrap_err();
        assert!(matches!(err, ExtractError::Name { .. }), "{err}");
        assert!(err.to_string().contains(found), "{err}");
    }
}

#[test]
fn only_regular_files_are_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let layer = tar(&[
        E::Kind("fifo", EntryType::Fifo),
        E::Kind("chr", EntryType::Char),
        E::Kind("blk", EntryType::Block),
        E::Dir("plugin"),
        E::File("plugin/x", b""),
    ]);
    let v = view(&dir, &[layer]).unwrap();
    assert!(read(&v, "/fifo").unwrap_err().contains("FIFO"));
    assert!(read(&v, "/chr").unwrap_err().contains("character device"));
    assert!(read(&v, "/blk").unwrap_err().contains("block device"));
    assert!(read(&v, "/plugin").unwrap_err().contains("is a directory"));
    assert!(read(&v, "/missing").unwrap_err().contains("does not exist"));
}

#[test]
fn sparse_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Four bytes on disk, a thousand when expanded.
    let mut h = header("plugin", EntryType::GNUSparse, 4);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.sparse[0].offset = *b"00000001744\0";
    gnu.sparse[0].numbytes = *b"00000000004\0";
    gnu.realsize = *b"00000001750\0";
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"#!xx"[..]).unwrap();
    let v = view(&dir, &[b.into_inner().unwrap()]).unwrap();
    let err = read(&v, "/plugin").unwrap_err();
    assert!(err.contains("sparse"), "{err}");
}

#[test]
fn compression_bombs_and_big_files_stop_at_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 8 << 20];
    let bomb = gz(&tar(&[E::File("plugin", &zeros)]));
    assert!(bomb.len() < 64 << 10);
    let err = view(&dir, &[bomb]).unwrap_err();
    assert!(matches!(err, ExtractError::Unpacked(_)), "{err}");
    let big = tar(&[E::File("plugin", &zeros[..2 << 20])]);
    let v = view(&dir, &[big]).unwrap();
    assert!(read(&v, "/plugin").unwrap_err().contains("over the limit"));
    let many: Vec<String> = (0..1001).map(|i| format!("f{i}")).collect();
    let entries: Vec<E> = many.iter().map(|n| E::File(n, b"")).collect();
    let err = view(&dir, &[tar(&entries)]).unwrap_err();
    assert!(matches!(err, ExtractError::Entries(1000)), "{err}");
}

#[test]
fn zstd_layers_of_several_frames() {
    let dir = tempfile::tempdir().unwrap();
    let data = tar(&[E::File("plugin", b"#!zstd")]);
    let (a, b) = data.split_at(700);
    let mut zst = ruzstd::encoding::compress_to_vec(a, ruzstd::encoding::CompressionLevel::Fastest);
    zst.extend(ruzstd::encoding::compress_to_vec(
        b,
        ruzstd::encoding::CompressionLevel::Fastest,
    ));
    let v = view(&dir, &[zst]).unwrap();
    assert_eq!(read(&v, "/plugin").unwrap(), b"#!zstd");
}
