//! Byte search for the hot path: `memchr`-like helpers without extra dependencies.
//!
//! The parser finds every line end and every JSON string end, so these loops carry most of the
//! bytes. `iter().position()` does not vectorise (LLVM keeps early-exit loops scalar), so we test
//! eight bytes at a time in a `u64` ("SWAR": SIMD within a register). The zero-byte test used here
//! is the exact one (no false positives in any lane), so it works for forward and reverse search.

const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const ONES: u64 = 0x0101_0101_0101_0101;

/// Returns a word with the high bit set in exactly the lanes of `x` that are zero.
#[inline(always)]
fn zero_lanes(x: u64) -> u64 {
    !(((x & LO7).wrapping_add(LO7)) | x | LO7)
}

/// Lanes equal to the byte whose repetition is `splat`.
#[inline(always)]
fn eq_lanes(word: u64, splat: u64) -> u64 {
    zero_lanes(word ^ splat)
}

#[inline(always)]
fn load(chunk: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(chunk);
    u64::from_le_bytes(bytes)
}

/// Index of the first `needle` in `hay`.
#[inline]
pub(crate) fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    let splat = ONES.wrapping_mul(u64::from(needle));
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0usize;
    for chunk in &mut chunks {
        let hits = eq_lanes(load(chunk), splat);
        if hits != 0 {
            return Some(base + (hits.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks.remainder().iter().position(|&b| b == needle).map(|i| base + i)
}

/// Index of the first byte in `hay` that is `a` or `b`.
#[inline]
pub(crate) fn memchr2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    let splat_a = ONES.wrapping_mul(u64::from(a));
    let splat_b = ONES.wrapping_mul(u64::from(b));
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0usize;
    for chunk in &mut chunks {
        let word = load(chunk);
        let hits = eq_lanes(word, splat_a) | eq_lanes(word, splat_b);
        if hits != 0 {
            return Some(base + (hits.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == a || c == b)
        .map(|i| base + i)
}

/// Index of the last `needle` in `hay`.
#[inline]
pub(crate) fn memrchr(needle: u8, hay: &[u8]) -> Option<usize> {
    let splat = ONES.wrapping_mul(u64::from(needle));
    let mut chunks = hay.rchunks_exact(8);
    let mut end = hay.len();
    for chunk in &mut chunks {
        end -= 8;
        let hits = eq_lanes(load(chunk), splat);
        if hits != 0 {
            return Some(end + 7 - (hits.leading_zeros() / 8) as usize);
        }
    }
    chunks.remainder().iter().rposition(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_in_every_lane_and_remainder() {
        for len in 0..40 {
            for at in 0..len {
                let mut hay = vec![b'x'; len];
                hay[at] = b'\n';
                assert_eq!(memchr(b'\n', &hay), Some(at), "len {len} at {at}");
                assert_eq!(memrchr(b'\n', &hay), Some(at), "len {len} at {at}");
                assert_eq!(memchr2(b'"', b'\n', &hay), Some(at));
            }
            let hay = vec![b'x'; len];
            assert_eq!(memchr(b'\n', &hay), None);
            assert_eq!(memrchr(b'\n', &hay), None);
        }
    }

    #[test]
    fn high_bytes_are_not_false_positives() {
        // 0x8a = 0x0a | 0x80: a naive zero test would flag it.
        let hay = [0x8a, 0x0b, 0x09, 0xff, 0x80, 0x00, 0x8a, 0x8a, 0x0a, 0x8a];
        assert_eq!(memchr(b'\n', &hay), Some(8));
        assert_eq!(memrchr(b'\n', &hay), Some(8));
        assert_eq!(memchr(0, &hay), Some(5));
    }

    proptest! {
        #[test]
        fn agrees_with_naive(hay in proptest::collection::vec(any::<u8>(), 0..100), a: u8, b: u8) {
            prop_assert_eq!(memchr(a, &hay), hay.iter().position(|&c| c == a));
            prop_assert_eq!(memrchr(a, &hay), hay.iter().rposition(|&c| c == a));
            prop_assert_eq!(memchr2(a, b, &hay), hay.iter().position(|&c| c == a || c == b));
        }
    }
}
