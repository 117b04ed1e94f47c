//! Building the token verifier from configuration, and the dev secret.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use auth::Verifier;

use crate::cli::JwtArgs;

const DEV_SECRET_FILE: &str = "dev-jwt-secret";

pub(crate) fn dev_secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DEV_SECRET_FILE)
}

/// The verifier the flags ask for; with none of them, the data directory's dev secret
/// (created on first use).
pub(crate) fn verifier(
    args: &JwtArgs,
    data_dir: Option<&Path>,
) -> anyhow::Result<(Verifier, String)> {
    if let Some(path) = &args.jwt_public_key_file {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok((Verifier::rs256_pem(&pem)?, format!("RS256 key {}", path.display())));
    }
    if let Some(path) = &args.jwt_jwks_file {
        let jwks = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok((Verifier::rs256_jwks(&jwks)?, format!("RS256 JWKS {}", path.display())));
    }
    if let Some(secret) = args.secret()? {
        let source =
            if args.jwt_secret.is_some() { "CHAT_JWT_SECRET" } else { "CHAT_JWT_SECRET_FILE" };
        return Ok((Verifier::hs256(secret.as_bytes())?, format!("HS256 secret from {source}")));
    }
    let Some(data_dir) = data_dir else {
        bail!(
            "set CHAT_JWT_SECRET_FILE (or CHAT_JWT_SECRET), CHAT_JWT_PUBLIC_KEY_FILE or \
             CHAT_JWT_JWKS_FILE"
        );
    };
    let secret = dev_secret(data_dir)?;
    let path = dev_secret_path(data_dir);
    Ok((Verifier::hs256(secret.as_bytes())?, format!("HS256 dev secret {}", path.display())))
}

/// Reads the dev secret, creating it if the data directory has none.
pub(crate) fn dev_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = dev_secret_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(secret) => return Ok(secret.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    // Two v4 UUIDs: 244 random bits from the operating system's generator.
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}
