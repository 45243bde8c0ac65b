//! Exact integer dot products of every 8-bit item row with a 16-bit user vector: the pass
//! [`super::scoring`] makes over the whole catalogue for each user it ranks (20,000 × 128 codes
//! per cold request).
//!
//! Three kernels, chosen at run time, with identical results (integer arithmetic, and the
//! caller's levels keep every sum within i32): AVX-512 VNNI, AVX2 and portable.

use super::simd::{cpu, Isa};

/// Codes per row are padded to a multiple of this, so the kernels have no tail.
pub(super) const LANES: usize = 32;

/// `out[i] = codes_i · p` for every row of `codes` (rows of `stride`, a multiple of
/// [`LANES`]; `p` holds `stride` entries).
pub(super) fn integer_dots(codes: &[i8], stride: usize, p: &[i16], out: &mut [f32]) {
    dots_with(Isa::widest(runs), codes, stride, p, out)
}

/// Whether this CPU has the features of `isa`'s kernel.
fn runs(isa: Isa) -> bool {
    match isa {
        Isa::Avx512 => cpu().avx512_vnni,
        Isa::Avx2 => cpu().avx2_fma,
        Isa::Portable => true,
    }
}

/// [`integer_dots`] with `isa`'s kernel, or the portable one if this CPU cannot run it.
fn dots_with(isa: Isa, codes: &[i8], stride: usize, p: &[i16], out: &mut [f32]) {
    assert!(stride.is_multiple_of(LANES) && p.len() == stride);
    assert_eq!(out.len() * stride, codes.len(), "one output per row");
    match isa {
        // SAFETY: `runs` checked that the CPU has the kernel's features; the shapes were
        // checked above, and the kernels read whole 32-code steps, which `LANES` divides.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if runs(isa) => unsafe { x86::dots_avx512(codes, stride, p, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if runs(isa) => unsafe { x86::dots_avx2(codes, stride, p, out) },
        _ => portable(codes, stride, p, out),
    }
}

fn portable(codes: &[i8], stride: usize, p: &[i16], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(codes.chunks_exact(stride)) {
        let acc: i32 = row
            .iter()
            .zip(p)
            .map(|(&x, &y)| i32::from(x) * i32::from(y))
            .sum();
        *o = acc as f32;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// One row against the user: 32 codes widen to i16 per step and `vpdpwssd` multiplies,
    /// pairs and accumulates them into 16 i32 lanes in one instruction.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn row(codes: &[i8], user: &[__m512i]) -> __m512i {
        let mut acc = _mm512_setzero_si512();
        for (x, &y) in codes.chunks_exact(32).zip(user) {
            // SAFETY: `x` is 32 bytes; unaligned loads.
            let x = unsafe { _mm256_loadu_si256(x.as_ptr().cast()) };
            acc = _mm512_dpwssd_epi32(acc, _mm512_cvtepi8_epi16(x), y);
        }
        acc
    }

    /// Four rows at a time, so that their 16-lane sums are reduced together (a transpose by
    /// unpacking) instead of one horizontal sum per row, which costs as much as the row.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn dots_avx512(codes: &[i8], stride: usize, p: &[i16], out: &mut [f32]) {
        // SAFETY (all loads and stores): each chunk holds exactly the bytes read or written.
        let user: Vec<__m512i> = p
            .chunks_exact(32)
            .map(|c| unsafe { _mm512_loadu_si512(c.as_ptr().cast()) })
            .collect();
        let mut rows = codes.chunks_exact(stride);
        let mut outs = out.chunks_exact_mut(4);
        for o in &mut outs {
            let mut next = || {
                rows.next()
                    .map_or(_mm512_setzero_si512(), |r| unsafe { row(r, &user) })
            };
            let (a0, a1, a2, a3) = (next(), next(), next(), next());
            // Per 128-bit lane: [a0+a2, a1+a3] pairs, then [r0, r1, r2, r3] partial sums.
            let s01 =
                _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
            let s23 =
                _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
            let s = _mm512_add_epi32(
                _mm512_unpacklo_epi64(s01, s23),
                _mm512_unpackhi_epi64(s01, s23),
            );
            // The four 128-bit lanes summed: the four rows' dot products.
            let h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64::<1>(s));
            let q = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            unsafe { _mm_storeu_ps(o.as_mut_ptr(), _mm_cvtepi32_ps(q)) };
        }
        for (o, r) in outs.into_remainder().iter_mut().zip(rows) {
            *o = _mm512_reduce_add_epi32(unsafe { row(r, &user) }) as f32;
        }
    }

    /// 16 codes widen to i16 per step and `vpmaddwd` multiplies and pairs them into 8 i32
    /// lanes, with two independent accumulators per row. Written out because LLVM vectorises
    /// the portable loop by widening to i32 first: half the codes per multiply.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dots_avx2(codes: &[i8], stride: usize, p: &[i16], out: &mut [f32]) {
        for (o, row) in out.iter_mut().zip(codes.chunks_exact(stride)) {
            let (mut acc0, mut acc1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            for (x, y) in row.chunks_exact(32).zip(p.chunks_exact(32)) {
                // SAFETY: `x` holds 32 codes and `y` 32 entries: each load reads one half of
                // either, unaligned.
                let (x0, x1, y0, y1) = unsafe {
                    (
                        _mm_loadu_si128(x.as_ptr().cast()),
                        _mm_loadu_si128(x.as_ptr().add(16).cast()),
                        _mm256_loadu_si256(y.as_ptr().cast()),
                        _mm256_loadu_si256(y.as_ptr().add(16).cast()),
                    )
                };
                acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_cvtepi8_epi16(x0), y0));
                acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_cvtepi8_epi16(x1), y1));
            }
            let s = _mm256_add_epi32(acc0, acc1);
            let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
            *o = _mm_cvtsi128_si32(s) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, stride: usize, seed: u64) -> (Vec<i8>, Vec<i16>) {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as i64
        };
        let codes = (0..n * stride)
            .map(|_| (next() % 255 - 127) as i8)
            .collect();
        // The extremes too: the caller's levels reach ±16,383 with 127-level codes.
        let p = (0..stride)
            .map(|_| (next() % 32_767 - 16_383) as i16)
            .collect();
        (codes, p)
    }

    #[test]
    fn every_kernel_gives_the_exact_integer_dots() {
        for stride in [32, 64, 128, 160] {
            for n in 0..11 {
                let (codes, p) = rows(n, stride, (stride * 100 + n) as u64);
                let mut reference = vec![0.0; n];
                portable(&codes, stride, &p, &mut reference);
                for (o, row) in reference.iter().zip(codes.chunks_exact(stride)) {
                    let exact: i64 = row
                        .iter()
                        .zip(&p)
                        .map(|(&x, &y)| i64::from(x) * i64::from(y))
                        .sum();
                    assert_eq!(*o, exact as f32);
                }
                let mut got = vec![f32::NAN; n];
                integer_dots(&codes, stride, &p, &mut got);
                assert_eq!(got, reference, "dispatch, stride {stride}, {n} rows");
                for isa in Isa::every(runs) {
                    let mut got = vec![f32::NAN; n];
                    dots_with(isa, &codes, stride, &p, &mut got);
                    assert_eq!(got, reference, "{isa:?}, stride {stride}, {n} rows");
                }
            }
        }
    }
}
