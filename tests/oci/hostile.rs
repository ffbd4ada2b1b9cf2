//! Hostile images and artifacts, each refused at pull time with a message naming what
//! was found and what is accepted; nothing of them reaches `sha256/`.

use crate::layout::{E, OCI_CONFIG, TAR_GZ, arch, config, gz, push_raw, tar};
use crate::registry::{Registry, push, settings, store};

fn sparse() -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..6].copy_from_slice(b"plugin");
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(4);
    h.set_mode(0o755);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.sparse[0].offset = *b"00000001744\0";
    gnu.sparse[0].numbytes = *b"00000000004\0";
    gnu.realsize = *b"00000001750\0";
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"#!xx"[..]).unwrap();
    b.into_inner().unwrap()
}

#[tokio::test]
async fn hostile_layers_are_refused_at_pull() {
    let reg = Registry::start().await;
    let cache = tempfile::tempdir().unwrap();
    let mut limited = settings(cache.path(), &reg);
    limited.max_plugin_bytes = 4 << 20;
    let s = store(limited, &[]);
    let script: &[u8] = b"#!/bin/sh\necho hi\n";
    let zeros = vec![0u8; 16 << 20];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "traversal",
            tar(&[
                E::File("../../etc/cron.d/x", script),
                E::File("plugin", script),
            ]),
            "climbs out with \"..\"",
        ),
        (
            "absolute",
            tar(&[E::File("/etc/passwd", script), E::File("plugin", script)]),
            "is an absolute path",
        ),
        (
            "symlink-escape",
            tar(&[E::Sym("plugin", "../../../../bin/sh")]),
            "leads above the image root",
        ),
        (
            "hardlink-escape",
            tar(&[E::Hard("plugin", "../../../bin/sh")]),
            "is a hardlink to \"../../../bin/sh\"",
        ),
        (
            "symlink-loop",
            tar(&[E::Sym("plugin", "a"), E::Sym("a", "/plugin")]),
            "more than 40 symlinks",
        ),
        (
            "gzip-bomb",
            tar(&[E::File("plugin", &zeros)]),
            "compression bomb",
        ),
        ("sparse", sparse(), "is a sparse file"),
        (
            "fifo",
            tar(&[E::Kind("plugin", tar::EntryType::Fifo)]),
            "is a FIFO",
        ),
        (
            "device",
            tar(&[E::Kind("plugin", tar::EntryType::Char)]),
            "is a character device",
        ),
        (
            "directory",
            tar(&[E::Dir("plugin/"), E::File("plugin/x", script)]),
            "/plugin is a directory",
        ),
        (
            "missing",
            tar(&[E::File("other", script)]),
            "does not exist",
        ),
        (
            "not-executable",
            tar(&[E::File("plugin", b"hello, world")]),
            "neither ELF nor a script",
        ),
        (
            "archive-inside",
            tar(&[E::File("plugin", &gz(&tar(&[E::File("p", script)])))]),
            "gzip data, not an executable",
        ),
    ];
    for (name, layer, expected) in cases {
        let cfg = config(&arch(), Some(&["/plugin"]), &[&layer]);
        let reference = format!("{}/plugins/hostile:{name}", reg.host);
        let blob = gz(&layer);
        push_raw(&s, &reference, (OCI_CONFIG, &cfg), &[(TAR_GZ, &blob)], None).await;
        let err = s.fetch(&reference).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{name}: {err}");
        assert!(err.contains("accepted"), "{name}: {err}");
    }
    // A shell-form entrypoint and a foreign image are refused before their layers load.
    let layer = tar(&[E::File("plugin", script)]);
    for (name, cfg, expected) in [
        (
            "shell",
            config(&arch(), Some(&["/bin/sh", "-c", "/plugin"]), &[&layer]),
            "exec form",
        ),
        (
            "foreign",
            config("s390x", Some(&["/plugin"]), &[&layer]),
            "an image for linux/s390x",
        ),
    ] {
        let reference = format!("{}/plugins/hostile:{name}", reg.host);
        let blob = gz(&layer);
        push_raw(&s, &reference, (OCI_CONFIG, &cfg), &[(TAR_GZ, &blob)], None).await;
        let err = s.fetch(&reference).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{name}: {err}");
    }
    assert_eq!(
        std::fs::read_dir(cache.path().join("sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(cache.path().join("tmp")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn a_tar_gz_pushed_as_the_binary_layer_is_refused_not_run() {
    let reg = Registry::start().await;
    let cache = tempfile::tempdir().unwrap();
    let s = store(settings(cache.path(), &reg), &[]);
    let archive = gz(&tar(&[E::File("plugin", b"#!/bin/sh\ntouch /tmp/ran\n")]));
    let reference = format!("{}/plugins/targz:1", reg.host);
    push(&s, &reference, &archive).await;
    let err = s.fetch(&reference).await.unwrap_err().to_string();
    assert!(
        err.contains("application/vnd.microgateway.plugin.binary.v1) is gzip data, not an executable; accepted: an ELF executable for"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(cache.path().join("sha256"))
            .unwrap()
            .count(),
        0
    );
    // An artifact whose one layer is of no accepted kind names what it found.
    let odd = format!("{}/plugins/odd:1", reg.host);
    push_raw(
        &s,
        &odd,
        (OCI_CONFIG, b"{}"),
        &[("application/x-foo", b"#!/bin/sh\n")],
        None,
    )
    .await;
    let err = s.fetch(&odd).await.unwrap_err().to_string();
    assert!(
        err.contains("application/x-foo") && err.contains("accepted image layers"),
        "{err}"
    );
}
