//! Seeded random ids in td's shapes (`td-` + 6 hex, `lg-` + 8 hex, …), so a run with the same
//! seed and session writes the same ids.

use rand::{RngCore, SeedableRng, rngs::StdRng};

pub(crate) struct IdGen {
    rng: StdRng,
}

impl IdGen {
    /// The session is mixed into the seed: two simulated clients given the same seed must
    /// still not mint the same issue ids (td's ids come from crypto/rand).
    pub fn new(seed: u64, session_id: &str) -> IdGen {
        // FNV-1a: stable across platforms and Rust versions, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in session_id.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        IdGen {
            rng: StdRng::seed_from_u64(seed ^ h),
        }
    }

    /// `prefix` + `bytes` random bytes in lowercase hex.
    pub fn random(&mut self, prefix: &str, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        self.rng.fill_bytes(&mut buf);
        format!("{prefix}{}", hex::encode(buf))
    }

    pub fn issue(&mut self) -> String {
        self.random("td-", 3)
    }
    pub fn action(&mut self) -> String {
        self.random("al-", 4)
    }
    pub fn log(&mut self) -> String {
        self.random("lg-", 4)
    }
    pub fn comment(&mut self) -> String {
        self.random("cm-", 4)
    }
    pub fn handoff(&mut self) -> String {
        self.random("ho-", 4)
    }
    pub fn board(&mut self) -> String {
        self.random("bd-", 4)
    }
    pub fn work_session(&mut self) -> String {
        self.random("ws-", 2)
    }
    pub fn note(&mut self) -> String {
        self.random("nt-", 3)
    }
    pub fn review(&mut self) -> String {
        self.random("rv-", 4)
    }
    /// A file content hash stand-in: td stores the SHA-256 of the linked file.
    pub fn sha256_hex(&mut self) -> String {
        self.random("", 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_reproducibility() {
        let mut a = IdGen::new(7, "ses_a");
        let mut b = IdGen::new(7, "ses_a");
        let mut c = IdGen::new(7, "ses_b");
        let id = a.issue();
        assert_eq!(id.len(), 9);
        assert!(id.starts_with("td-"));
        assert_eq!(id, b.issue());
        assert_ne!(IdGen::new(7, "ses_a").issue(), c.issue());
        assert_eq!(a.action().len(), 11);
        assert_eq!(a.work_session().len(), 7);
        assert_eq!(a.sha256_hex().len(), 64);
    }
}
