//! Building container images the way `docker build` lays them out (an OCI layout
//! directory pushed with `skopeo copy`), raw manifests pushed with oci-client, tar
//! layers with any entry (hostile ones included), and running a pulled plugin.

use crate::common::PluginEntry;
use crate::common::gateway::{toml_path, toml_str};
use microgateway::oci::OciStore;
use microgateway::oci::artifact::digest;
use serde_json::{Value, json};
use std::io::Write as _;

/// One tar entry; names and link targets go in raw, so hostile ones are possible.
pub enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Kind(&'a str, tar::EntryType),
}

fn header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
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
            E::File(n, d) => (header(n, tar::EntryType::Regular, d.len() as u64), d),
            E::Dir(n) => (header(n, tar::EntryType::Directory, 0), b""),
            E::Sym(n, t) | E::Hard(n, t) => {
                let kind = match e {
                    E::Sym(..) => tar::EntryType::Symlink,
                    _ => tar::EntryType::Link,
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
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The example plugin every image carries.
pub fn plugin() -> Vec<u8> {
    std::fs::read(env!("CARGO_BIN_EXE_mg-plugin-header-enricher")).unwrap()
}

/// The architecture of this host in OCI spelling.
pub fn arch() -> String {
    microgateway::oci::artifact::Platform::current().architecture
}

/// An image config for `arch` with `entrypoint`; `diff_ids` are the uncompressed tars.
pub fn config(arch: &str, entrypoint: Option<&[&str]>, tars: &[&[u8]]) -> Vec<u8> {
    let mut cfg = json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": tars.iter().map(|t| digest(t)).collect::<Vec<_>>()},
        "history": [{"created_by": "COPY my-plugin /plugin # buildkit"}]
    });
    if let Some(e) = entrypoint {
        cfg["config"]["Entrypoint"] = json!(e);
    }
    serde_json::to_vec(&cfg).unwrap()
}

fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest(data), "size": data.len()})
}

/// An OCI image layout directory.
pub struct Layout {
    pub dir: tempfile::TempDir,
}

impl Layout {
    pub fn new() -> Layout {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Layout { dir }
    }

    fn add(&self, media_type: &str, data: &[u8]) -> Value {
        let d = digest(data);
        std::fs::write(
            self.dir
                .path()
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
            data,
        )
        .unwrap();
        descriptor(media_type, data)
    }

    /// Adds an image manifest; returns its descriptor.
    pub fn image(&self, config: &[u8], layers: &[(&str, Vec<u8>)]) -> Value {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": self.add(OCI_CONFIG, config),
            "layers": layers.iter().map(|(t, d)| self.add(t, d)).collect::<Vec<_>>(),
        });
        self.add(
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        )
    }

    /// Adds an image index of `(arch, manifest descriptor)`; returns its descriptor.
    pub fn index(&self, entries: &[(&str, Value)]) -> Value {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(arch, d)| {
                let mut d = d.clone();
                d["platform"] = json!({"architecture": arch, "os": "linux"});
                d
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        self.add(
            "application/vnd.oci.image.index.v1+json",
            &serde_json::to_vec(&index).unwrap(),
        )
    }

    /// Tags `descriptor` and copies it to `dest` (`host/repo:tag`) with skopeo.
    pub fn push(&self, descriptor: &Value, dest: &str, extra: &[&str]) {
        let mut d = descriptor.clone();
        d["annotations"] = json!({"org.opencontainers.image.ref.name": "latest"});
        let index = json!({"schemaVersion": 2, "manifests": [d]});
        std::fs::write(
            self.dir.path().join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        let out = std::process::Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:latest", self.dir.path().display()))
            .arg(format!("docker://{dest}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Pushes a manifest with `config` and `layers` straight to the registry (no skopeo,
/// so any layer content goes); returns the manifest digest.
pub async fn push_raw(
    store: &OciStore,
    reference: &str,
    config: (&str, &[u8]),
    layers: &[(&str, &[u8])],
    layer_annotations: Option<Value>,
) -> String {
    let r = store.parse(reference).unwrap();
    let auth = store.auth(&r);
    let client = store.client();
    client
        .auth(&r, &auth, oci_client::RegistryOperation::Push)
        .await
        .unwrap();
    for data in std::iter::once(config.1).chain(layers.iter().map(|(_, d)| *d)) {
        client
            .push_blob(&r, data.to_vec(), &digest(data))
            .await
            .unwrap();
    }
    let layers: Vec<Value> = layers
        .iter()
        .map(|(t, d)| {
            let mut l = descriptor(t, d);
            if let Some(a) = &layer_annotations {
                l["annotations"] = a.clone();
            }
            l
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(config.0, config.1),
        "layers": layers,
    });
    let body = serde_json::to_vec(&manifest).unwrap();
    let d = digest(&body);
    client
        .push_manifest_raw(
            &r,
            body,
            http::HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json"),
        )
        .await
        .unwrap();
    d
}

/// Starts a gateway running `oci://reference` as a pre-auth plugin and checks that the
/// plugin's header reaches the upstream.
pub async fn runs_in_gateway(cache: &std::path::Path, registry_host: &str, reference: &str) {
    let up = crate::common::TestUpstream::start("up").await;
    let oci = format!(
        "[oci]\ncache_dir = {}\ninsecure_registries = [{}]\n",
        toml_path(cache),
        toml_str(registry_host)
    );
    let entry = PluginEntry::new("from-oci", &format!("oci://{reference}"), "pre_auth")
        .extra("config = { headers = { \"x-from-image\" = \"1\" } }");
    let gw = crate::common::GatewayConfig::new()
        .upstream("main", &[&up])
        .route("main", "main", "")
        .raw(&oci)
        .plugin(entry)
        .start()
        .await;
    let reply = crate::common::get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.echo().header("x-from-image"), Some("1"));
}
