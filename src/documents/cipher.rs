//! Sealing a file as it streams: AES-256-GCM in the STREAM construction
//! (fixed 64 KiB chunks, each sealed with a counter and a last-chunk flag in
//! its nonce), so a file is encrypted and decrypted a chunk at a time, and
//! a stored file that was cut short, reordered or altered does not open.
//!
//! A sealed file is `SLD1`, a 7-byte random nonce prefix, then the chunks,
//! each 16 bytes longer than the plaintext it holds.

use aes_gcm::{
    Aes256Gcm, Key,
    aead::{
        KeyInit,
        generic_array::GenericArray,
        stream::{DecryptorBE32, EncryptorBE32},
    },
};

use super::keys::FileKey;
use crate::{
    error::{AppError, AppResult},
    secrets::random_bytes,
};

/// Plaintext bytes per sealed chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const MAGIC: &[u8; 4] = b"SLD1";
const PREFIX: usize = 7;
/// Bytes before the first chunk.
pub const HEADER: usize = MAGIC.len() + PREFIX;

/// How many stored bytes a file of `size` bytes takes once sealed.
pub fn sealed_size(size: u64) -> u64 {
    let chunks = size.div_ceil(CHUNK as u64).max(1);
    HEADER as u64 + size + chunks * TAG as u64
}

/// Seals a file fed in pieces of any size.
pub struct Sealer {
    stream: Option<EncryptorBE32<Aes256Gcm>>,
    pending: Vec<u8>,
}

impl Sealer {
    /// A sealer for `key`, and the header that must open the stored file.
    pub fn new(key: &FileKey) -> AppResult<(Self, Vec<u8>)> {
        let prefix = random_bytes::<PREFIX>()?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key[..]));
        let stream = EncryptorBE32::from_aead(cipher, GenericArray::from_slice(&prefix));
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&prefix);
        Ok((Self { stream: Some(stream), pending: Vec::with_capacity(CHUNK) }, header))
    }

    /// Takes `data`, adding to `out` every chunk now complete. The last
    /// chunk is held back until [`Sealer::finish`], which marks it last.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> AppResult<()> {
        while !data.is_empty() {
            if self.pending.len() == CHUNK {
                let stream = self.stream.as_mut().ok_or_else(finished)?;
                let sealed = stream.encrypt_next(self.pending.as_slice()).map_err(|_| sealing_failed())?;
                out.extend_from_slice(&sealed);
                self.pending.clear();
            }
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals what is left as the last chunk (empty for an empty file).
    pub fn finish(mut self, out: &mut Vec<u8>) -> AppResult<()> {
        let stream = self.stream.take().ok_or_else(finished)?;
        let sealed = stream.encrypt_last(self.pending.as_slice()).map_err(|_| sealing_failed())?;
        out.extend_from_slice(&sealed);
        Ok(())
    }
}

fn sealing_failed() -> AppError {
    AppError::Internal("sealing a document chunk failed".into())
}

fn finished() -> AppError {
    AppError::Internal("a document stream was used after it ended".into())
}

/// Why a stored file did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stored file is damaged: it does not open with its key")]
pub struct Damaged;

/// Opens a sealed file fed in pieces of any size.
pub struct Opener {
    cipher: Option<Aes256Gcm>,
    stream: Option<DecryptorBE32<Aes256Gcm>>,
    pending: Vec<u8>,
}

impl Opener {
    pub fn new(key: &FileKey) -> Self {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key[..]));
        Self { cipher: Some(cipher), stream: None, pending: Vec::with_capacity(CHUNK + TAG) }
    }

    /// Takes sealed `data`, adding to `out` the plaintext of every chunk
    /// known not to be the last.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), Damaged> {
        while !data.is_empty() {
            if self.stream.is_none() {
                let take = (HEADER - self.pending.len()).min(data.len());
                self.pending.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.pending.len() == HEADER {
                    if &self.pending[..MAGIC.len()] != MAGIC {
                        return Err(Damaged);
                    }
                    let cipher = self.cipher.take().ok_or(Damaged)?;
                    let prefix = GenericArray::from_slice(&self.pending[MAGIC.len()..]);
                    self.stream = Some(DecryptorBE32::from_aead(cipher, prefix));
                    self.pending.clear();
                }
                continue;
            }
            // A full chunk is known not to be the last only once more follows.
            if self.pending.len() == CHUNK + TAG {
                let stream = self.stream.as_mut().ok_or(Damaged)?;
                let plain = stream.decrypt_next(self.pending.as_slice()).map_err(|_| Damaged)?;
                out.extend_from_slice(&plain);
                self.pending.clear();
            }
            let take = (CHUNK + TAG - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Opens the last chunk: a file cut short or missing its end fails here.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), Damaged> {
        let stream = self.stream.take().ok_or(Damaged)?;
        let plain = stream.decrypt_last(self.pending.as_slice()).map_err(|_| Damaged)?;
        out.extend_from_slice(&plain);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::*;

    fn seal(key: &FileKey, plain: &[u8], piece: usize) -> Vec<u8> {
        let (mut sealer, mut out) = Sealer::new(key).expect("sealer");
        for part in plain.chunks(piece.max(1)) {
            sealer.push(part, &mut out).expect("push");
        }
        sealer.finish(&mut out).expect("finish");
        out
    }

    fn open(key: &FileKey, sealed: &[u8], piece: usize) -> Result<Vec<u8>, Damaged> {
        let mut opener = Opener::new(key);
        let mut out = Vec::new();
        for part in sealed.chunks(piece.max(1)) {
            opener.push(part, &mut out)?;
        }
        opener.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn files_of_every_shape_come_back_whole() {
        let key = Zeroizing::new([9u8; 32]);
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let plain: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            for (seal_piece, open_piece) in [(size, size), (1000, 7), (CHUNK, 1 << 20), (4096, CHUNK + 16)] {
                let sealed = seal(&key, &plain, seal_piece);
                assert_eq!(sealed.len() as u64, sealed_size(size as u64), "size {size}");
                assert_eq!(open(&key, &sealed, open_piece).expect("opens"), plain, "size {size}");
            }
        }
    }

    #[test]
    fn the_plaintext_is_not_in_the_stored_bytes() {
        let key = Zeroizing::new([3u8; 32]);
        let plain = b"MARKER-PLAINTEXT-0042 ".repeat(5000);
        let sealed = seal(&key, &plain, 999);
        assert!(!sealed.windows(21).any(|w| w == b"MARKER-PLAINTEXT-0042"));
    }

    #[test]
    fn an_altered_cut_or_foreign_file_does_not_open() {
        let key = Zeroizing::new([5u8; 32]);
        let plain = vec![42u8; 2 * CHUNK + 10];
        let sealed = seal(&key, &plain, CHUNK);
        let mut altered = sealed.clone();
        altered[HEADER + 100] ^= 1;
        assert_eq!(open(&key, &altered, 5000), Err(Damaged));
        // Cut at a chunk boundary: the chunk now last was not sealed as last.
        let cut = &sealed[..HEADER + CHUNK + TAG];
        assert_eq!(open(&key, cut, 5000), Err(Damaged));
        assert_eq!(open(&key, &sealed[..HEADER - 2], 5000), Err(Damaged));
        assert_eq!(open(&Zeroizing::new([6u8; 32]), &sealed, 5000), Err(Damaged));
    }
}
