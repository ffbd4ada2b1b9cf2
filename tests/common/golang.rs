//! Builds Go plugins for the tests with Debian's toolchain: `golang-go` and the Debian
//! Go library packages (`golang-github-hashicorp-go-plugin-dev` 1.0.1,
//! `golang-google-grpc-dev`, `golang-google-protobuf-dev`) under `/usr/share/gocode`.
//!
//! The build runs in GOPATH mode (`GO111MODULE=off`), so nothing is downloaded: every
//! import must resolve from `/usr/share/gocode`. A plugin is one `package main`
//! directory (its generated `.pb.go` files included). Each directory is built once per
//! test process into `target/go-plugins/<name>`; the Go build cache lives in
//! `target/go-cache`, so later test binaries reuse the compiled packages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where the Debian Go packages install their sources.
pub const DEBIAN_GOPATH: &str = "/usr/share/gocode";

static BUILT: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);

fn target_dir() -> PathBuf {
    // Test binaries live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("target directory above the test executable")
        .to_path_buf()
}

/// The directory of a Go example under `examples/go/`.
pub fn example_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/go")
        .join(name)
}

/// Builds the `package main` in `dir` (once per process) and returns the executable.
/// Panics with the compiler's output when the build fails, or when `go` is missing
/// (install `golang-go` and the Debian Go packages `.ci/run` names).
pub fn build(dir: &Path) -> PathBuf {
    let dir = dir.canonicalize().expect("Go source directory exists");
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(&dir) {
        return path.clone();
    }
    let name = dir.file_name().expect("named directory").to_os_string();
    let out_dir = target_dir().join("go-plugins");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(&name);
    let output = std::process::Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&dir)
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOCACHE", target_dir().join("go-cache"))
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go` (apt install golang-go): {e}"));
    assert!(
        output.status.success(),
        "go build in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    built.insert(dir, out.clone());
    out
}
