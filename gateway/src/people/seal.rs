//! Sealing secrets the server must keep but never show (a person's GitHub token, kept to
//! re-check their access): ChaCha20-Poly1305 under the server's secret key. The key comes from
//! `TDSYNC_SECRET_KEY` (64 hex digits) or a key file (created 0600 on first start); every
//! process of a cluster needs the same one.

use std::{io::Write as _, path::Path};

use base64::Engine as _;
use ring::{
    aead::{self, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};

const PREFIX: &str = "v1:";

/// Seals and opens with the server's key. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    key: std::sync::Arc<LessSafeKey>,
    rng: SystemRandom,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the secret key must be 64 hexadecimal digits (32 bytes)")]
    BadKey,
    #[error("secret key file {path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a sealed value does not open with this server's key (was the key changed?)")]
    Unreadable,
}

impl Sealer {
    /// From 64 hex digits.
    pub fn from_hex(hex_key: &str) -> Result<Sealer, SealError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| SealError::BadKey)?;
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| SealError::BadKey)?;
        Ok(Sealer {
            key: std::sync::Arc::new(LessSafeKey::new(key)),
            rng: SystemRandom::new(),
        })
    }

    /// The key in `path`, made (random, mode 0600) when the file does not exist yet.
    pub fn from_file(path: &Path) -> Result<Sealer, SealError> {
        let io = |source| SealError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(hex_key) => Sealer::from_hex(&hex_key),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| io(std::io::Error::other("no randomness")))?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(path) {
                    Ok(mut file) => {
                        file.write_all(hex::encode(key).as_bytes()).map_err(io)?;
                        file.sync_all().map_err(io)?;
                        Sealer::from_hex(&hex::encode(key))
                    }
                    // Another process made it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Sealer::from_hex(&std::fs::read_to_string(path).map_err(io)?)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; aead::NONCE_LEN];
        // The system's randomness does not fail on Linux; a fixed nonce would be worse than
        // stopping.
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut data = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .expect("sealing a short value");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        )
    }

    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(b)
                    .ok()
            })
            .filter(|raw| raw.len() > aead::NONCE_LEN)
            .ok_or(SealError::Unreadable)?;
        let (nonce, data) = raw.split_at(aead::NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unreadable)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut data)
            .map_err(|_| SealError::Unreadable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let a = Sealer::from_file(&path).unwrap();
        let sealed = a.seal("gho_secret");
        assert!(!sealed.contains("gho_secret"));
        assert_ne!(sealed, a.seal("gho_secret"), "a fresh nonce every time");
        // The same file gives the same key.
        assert_eq!(
            Sealer::from_file(&path).unwrap().open(&sealed).unwrap(),
            "gho_secret"
        );
        let other = Sealer::from_hex(&"11".repeat(32)).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(a.open("").is_err());
        assert!(a.open("v1:AAAA").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(Sealer::from_hex("abc").is_err());
    }
}
