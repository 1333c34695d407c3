//! MurmurHash3, x86 32-bit variant (Austin Appleby's `MurmurHash3_x86_32`), seed 0 for flagd.
//!
//! [`Murmur3`] hashes a byte string given in several pieces, so the default bucketing value
//! `flagKey + targetingKey` is hashed without building the concatenated string.

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline]
fn mix_k(mut k: u32) -> u32 {
    k = k.wrapping_mul(C1);
    k = k.rotate_left(15);
    k.wrapping_mul(C2)
}

/// Streaming MurmurHash3 x86 32-bit state.
#[derive(Debug, Clone)]
pub struct Murmur3 {
    h: u32,
    /// Bytes of an incomplete 4-byte block carried between `write` calls.
    tail: [u8; 4],
    tail_len: usize,
    total_len: usize,
}

impl Murmur3 {
    /// A new hasher with the given seed (flagd uses 0).
    pub fn new(seed: u32) -> Self {
        Self {
            h: seed,
            tail: [0; 4],
            tail_len: 0,
            total_len: 0,
        }
    }

    #[inline]
    fn block(&mut self, k: u32) {
        self.h ^= mix_k(k);
        self.h = self.h.rotate_left(13);
        self.h = self.h.wrapping_mul(5).wrapping_add(0xe654_6b64);
    }

    /// Feeds more bytes; the result equals hashing the concatenation of all pieces.
    pub fn write(&mut self, mut bytes: &[u8]) {
        self.total_len += bytes.len();
        if self.tail_len > 0 {
            while self.tail_len < 4 {
                let Some((&b, rest)) = bytes.split_first() else {
                    return;
                };
                self.tail[self.tail_len] = b;
                self.tail_len += 1;
                bytes = rest;
            }
            self.block(u32::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut chunks = bytes.chunks_exact(4);
        for c in &mut chunks {
            self.block(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
        let rest = chunks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// The final hash value.
    pub fn finish(&self) -> u32 {
        let mut h = self.h;
        if self.tail_len > 0 {
            let mut k: u32 = 0;
            for i in (0..self.tail_len).rev() {
                k = (k << 8) | u32::from(self.tail[i]);
            }
            h ^= mix_k(k);
        }
        // The reference implementation mixes in the length as a 32-bit value.
        h ^= self.total_len as u32;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^= h >> 16;
        h
    }
}

/// MurmurHash3 x86 32-bit of `bytes` with `seed`.
pub fn murmur3_32(bytes: &[u8], seed: u32) -> u32 {
    let mut m = Murmur3::new(seed);
    m.write(bytes);
    m.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers of the reference MurmurHash3_x86_32 (SMHasher), also produced by
    // Python's `mmh3.hash(s, seed, signed=False)`.
    #[test]
    fn known_answer_vectors() {
        let cases: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514e_28b7),
            (b"", 0xffff_ffff, 0x81f1_6f39),
            (b"\0\0\0\0", 0, 0x2362_f9de),
            (b"aaaa", 0x9747_b28c, 0x5a97_808a),
            (b"aaa", 0x9747_b28c, 0x283e_0130),
            (b"aa", 0x9747_b28c, 0x5d21_1726),
            (b"a", 0x9747_b28c, 0x7fa0_9ea6),
            (b"abcd", 0x9747_b28c, 0xf047_8627),
            (b"abc", 0x9747_b28c, 0xc84a_62dd),
            (b"ab", 0x9747_b28c, 0x7487_5592),
            (b"Hello, world!", 0x9747_b28c, 0x2488_4cba),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x9747_b28c,
                0x2fa8_26cd,
            ),
            (
                b"The quick brown fox jumps over the lazy dog",
                0,
                0x2e4f_f723,
            ),
            (b"\xff\xff\xff\xff", 0, 0x7629_3b50),
            (b"\x21\x43\x65\x87", 0, 0xf55b_516b),
            (b"\x21\x43\x65", 0, 0x7e4a_8634),
            (b"\x21\x43", 0, 0xa0f7_b07a),
            (b"\x21", 0, 0x7266_1cf4),
        ];
        for (input, seed, want) in cases {
            assert_eq!(
                murmur3_32(input, *seed),
                *want,
                "murmur3_32({input:?}, {seed:#x})"
            );
        }
    }

    #[test]
    fn streaming_equals_one_shot_for_every_split() {
        let data = "fractional-flag🚀 user-ünïcode@example.com".as_bytes();
        let whole = murmur3_32(data, 0);
        for i in 0..=data.len() {
            for j in i..=data.len() {
                let mut m = Murmur3::new(0);
                m.write(&data[..i]);
                m.write(&data[i..j]);
                m.write(&data[j..]);
                assert_eq!(m.finish(), whole, "split at {i},{j}");
            }
        }
    }
}
