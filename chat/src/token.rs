//! `chat token`: mint a development token.

use std::io::Write;

use anyhow::{Context, bail};

use crate::cli::TokenArgs;
use crate::jwt::dev_secret_path;

pub(crate) fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let secret = match &args.jwt_secret {
        Some(secret) => secret.clone(),
        None => {
            let path = dev_secret_path(&args.data_dir);
            match std::fs::read_to_string(&path) {
                Ok(secret) => secret.trim().to_owned(),
                Err(_) => bail!(
                    "no secret: set CHAT_JWT_SECRET, or start `chat dev` once so it creates {}",
                    path.display()
                ),
            }
        }
    };
    schemas::UserId::new(args.sub.as_str()).context("--sub")?;
    let token = auth::mint_hs256(
        secret.as_bytes(),
        &args.sub,
        args.name.as_deref(),
        args.service,
        args.ttl,
    )?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{token}")?;
    Ok(())
}
