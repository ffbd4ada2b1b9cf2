//! `microgateway plugin …`: package, publish, sign, pull and verify OCI plugins without
//! docker or cosign.

use anyhow::{Context, bail};
use clap::Subcommand;
use microgateway::Config;
use microgateway::oci::artifact::Platform;
use microgateway::oci::settings::OciSettings;
use microgateway::oci::{OciStore, push};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Upload an executable as a plugin artifact for this platform (`push FILE REFERENCE`),
    /// or one per platform as an OCI image index (`push REFERENCE --platform
    /// linux/amd64=FILE --platform linux/arm64=FILE`); prints the manifest or index digest.
    Push {
        /// `FILE REFERENCE`, or only `REFERENCE` with `--platform`. The reference is e.g.
        /// `registry:5000/plugins/auth:1.0`.
        #[arg(num_args = 1..=2, value_names = ["FILE", "REFERENCE"], required = true)]
        args: Vec<String>,
        /// `OS/ARCH[/VARIANT]=FILE`, repeated: publish a multi-platform index.
        #[arg(long = "platform", value_name = "OS/ARCH=FILE")]
        platforms: Vec<String>,
        /// Name recorded in the artifact (default: the file name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Sign a pushed plugin with a PEM ECDSA P-256 private key: a sigstore bundle stored
    /// as an OCI 1.1 referrer (cosign v3's default), or legacy cosign simple signing.
    Sign {
        /// Reference by tag or digest (an index digest signs every platform in it).
        reference: String,
        /// Private key (unencrypted PKCS#8 or SEC1 PEM), e.g. from `plugin keygen`.
        #[arg(long)]
        key: PathBuf,
        /// `bundle`: a sigstore bundle v0.3 referrer, also under the `sha256-<hex>` fallback
        /// tag for registries without the referrers API; `legacy`: `sha256-<hex>.sig`.
        #[arg(long, value_enum, default_value_t = microgateway::oci::referrers::SignFormat::Bundle)]
        format: microgateway::oci::referrers::SignFormat,
    },
    /// Pull a plugin into the cache (`[oci]` settings and `OCI_PLUGINS_*` apply); prints its path.
    Pull {
        /// Reference by tag or digest.
        reference: String,
    },
    /// Pull and require a valid signature from one of the configured public keys (or `--key`).
    Verify {
        /// Reference by tag or digest.
        reference: String,
        /// Public key PEM file to trust in addition to the configured ones.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Create an ECDSA P-256 key pair: PREFIX.key (private, 0600) and PREFIX.pub.
    Keygen {
        /// Output path prefix.
        prefix: PathBuf,
    },
}

pub fn run(command: PluginCommand, config: Option<&Path>) -> anyhow::Result<()> {
    if let PluginCommand::Keygen { prefix } = &command {
        return keygen(prefix);
    }
    let config = Config::load(config)?;
    let mut settings = OciSettings::from_config(&config.oci)?;
    if let PluginCommand::Verify { key: Some(key), .. } = &command {
        let text = key.to_string_lossy().to_string();
        settings.public_keys.push(
            microgateway::oci::settings::parse_public_key(&text).map_err(anyhow::Error::msg)?,
        );
        settings.require_signature = true;
    }
    if let PluginCommand::Verify { .. } = &command {
        settings.require_signature = true;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = OciStore::new(settings)?;
        match command {
            PluginCommand::Push {
                args,
                platforms,
                name,
            } => {
                let digest = push_command(&store, &args, &platforms, name).await?;
                println!("{digest}");
            }
            PluginCommand::Sign {
                reference,
                key,
                format,
            } => {
                let pem = std::fs::read_to_string(&key)
                    .with_context(|| format!("cannot read {}", key.display()))?;
                let key = push::signing_key(&pem).map_err(anyhow::Error::msg)?;
                let parsed = store.parse(&reference)?;
                let digest = match parsed.digest() {
                    Some(d) => d.to_string(),
                    None => store
                        .client()
                        .fetch_manifest_digest(&parsed, &store.auth(&parsed))
                        .await
                        .with_context(|| format!("cannot resolve {reference}"))?,
                };
                let place =
                    microgateway::oci::referrers::sign(&store, &reference, &digest, &key, format)
                        .await?;
                println!("signed {digest} as {place}");
            }
            PluginCommand::Pull { reference } | PluginCommand::Verify { reference, .. } => {
                let fetched = store.fetch(&reference).await?;
                let signature = match fetched.meta.signature {
                    microgateway::oci::cache::SignatureRecord::Verified { .. } => "verified",
                    microgateway::oci::cache::SignatureRecord::Bundle { .. } => {
                        "verified (sigstore bundle)"
                    }
                    microgateway::oci::cache::SignatureRecord::Missing => "missing",
                    microgateway::oci::cache::SignatureRecord::Unverified => {
                        "not checked (no public keys)"
                    }
                };
                println!("path:      {}", fetched.path.display());
                println!("digest:    {}", fetched.meta.manifest_digest);
                println!("format:    {}", fetched.meta.format);
                if let Some(entrypoint) = &fetched.meta.entrypoint {
                    println!("entry:     {entrypoint}");
                }
                println!(
                    "binary:    {} ({} bytes)",
                    fetched.meta.blob_digest, fetched.meta.size
                );
                println!("signature: {signature}");
                println!(
                    "source:    {}",
                    if fetched.from_cache {
                        "cache"
                    } else {
                        "registry"
                    }
                );
            }
            PluginCommand::Keygen { .. } => bail!("unreachable"),
        }
        Ok(())
    })
}

fn file_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

async fn push_command(
    store: &OciStore,
    args: &[String],
    platforms: &[String],
    name: Option<String>,
) -> anyhow::Result<String> {
    let read = |file: &Path| {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
    };
    match (args, platforms.is_empty()) {
        ([file, reference], true) => {
            let file = PathBuf::from(file);
            let name = name.unwrap_or_else(|| file_name(&file));
            Ok(push::push(store, reference, &read(&file)?, &name).await?)
        }
        ([reference], false) => {
            let mut binaries = Vec::new();
            let mut first = None;
            for spec in platforms {
                let (platform, file) = spec
                    .split_once('=')
                    .and_then(|(p, f)| Some((Platform::parse(p)?, PathBuf::from(f))))
                    .with_context(|| {
                        format!("--platform {spec:?}: expected OS/ARCH[/VARIANT]=FILE, e.g. linux/arm64=./plugin-arm64")
                    })?;
                if binaries.iter().any(|(p, _)| p == &platform) {
                    bail!("--platform {platform} is given twice");
                }
                first.get_or_insert_with(|| file_name(&file));
                binaries.push((platform, read(&file)?));
            }
            let name = name.or(first).unwrap_or_default();
            Ok(push::push_index(store, reference, &binaries, &name).await?)
        }
        ([_, _], false) => {
            bail!("with --platform, give only the reference (the files come with each --platform)")
        }
        _ => bail!("expected FILE REFERENCE, or REFERENCE with --platform OS/ARCH=FILE"),
    }
}

fn keygen(prefix: &Path) -> anyhow::Result<()> {
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("cannot encode the private key")?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .context("cannot encode the public key")?;
    let key_path = prefix.with_extension("key");
    let pub_path = prefix.with_extension("pub");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("cannot create {}", key_path.display()))?;
    file.write_all(private.as_bytes())?;
    std::fs::write(&pub_path, public)
        .with_context(|| format!("cannot write {}", pub_path.display()))?;
    println!("wrote {} and {}", key_path.display(), pub_path.display());
    Ok(())
}
