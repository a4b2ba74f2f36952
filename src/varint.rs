//! Unsigned LEB128 varints (protobuf's and Prometheus's WAL's), written once
//! for the WAL records and the remote-write encoder, which share the format.

/// Appends `v` to `out`, seven bits a byte, low bits first.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `v` written into `out` at `*at` (moved past it), for a caller that
/// packs varints into a fixed buffer: bytes past `out`'s end are dropped,
/// so size `out` with [`len`].
pub fn put_at(out: &mut [u8], at: &mut usize, mut v: u64) {
    loop {
        let byte = if v >= 0x80 { (v as u8) | 0x80 } else { v as u8 };
        if let Some(slot) = out.get_mut(*at) {
            *slot = byte;
        }
        *at += 1;
        v >>= 7;
        if v == 0 {
            return;
        }
    }
}

/// How many bytes [`put`] writes for `v`, to size a protobuf field before
/// writing it.
pub fn len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Reads a varint at `*pos` and moves past it; None when `data` ends inside
/// it or it runs past 64 bits (a torn or corrupt record, never a panic).
pub fn get(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sizes_agree() {
        let values = [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        let mut out = Vec::new();
        for v in values {
            let before = out.len();
            put(&mut out, v);
            assert_eq!(out.len() - before, len(v), "len({v})");
        }
        assert_eq!(&out[..4], [0x00, 0x01, 0x7f, 0x80]);
        let mut packed = [0; 40];
        let mut at = 0;
        for v in values.iter().take(8) {
            put_at(&mut packed, &mut at, *v);
        }
        assert_eq!(&packed[..at], &out[..at], "put_at writes what put does");
        let mut pos = 0;
        for v in values {
            assert_eq!(get(&out, &mut pos), Some(v));
        }
        assert_eq!(pos, out.len());
        assert_eq!(len(u64::MAX), 10);
    }

    #[test]
    fn a_cut_or_overlong_varint_is_none() {
        assert_eq!(get(&[0x80, 0x80], &mut 0), None);
        assert_eq!(get(&[0xff; 11], &mut 0), None);
        assert_eq!(get(&[], &mut 0), None);
    }
}
