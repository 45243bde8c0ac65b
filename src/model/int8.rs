//! Exact integer dot products of every 8-bit item row with a 16-bit user vector: the pass
//! [`super::scoring`] makes over the whole catalogue for each user it ranks (20,000 × 128 codes
//! per cold request).
//!
//! Three kernels, chosen at run time, with identical results (integer arithmetic, and the
//! caller's levels keep every sum within i32): AVX-512 VNNI, AVX2 and portable.

/// Codes per row are padded to a multiple of this, so the kernels have no tail.
pub(super) const LANES: usize = 32;

/// `out[i] = codes_i · p` for every row of `codes` (rows of `stride`, a multiple of
/// [`LANES`]; `p` holds `stride` entries).
pub(super) fn integer_dots(codes: &[i8], stride: usize, p: &[i16], out: &mut [f32]) {
    assert!(stride.is_multiple_of(LANES) && p.len() == stride);
    assert_eq!(out.len() * stride, codes.len(), "one output per row");
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512_vnni() {
            // SAFETY: the CPU has the kernel's features (checked just above).
            return unsafe { x86::dots_avx512(codes, stride, p, out) };
        }
        if let Some(simd) = pulp::x86::V3::try_new() {
            return simd.vectorize(x86::Avx2Dots {
                simd,
                codes,
                stride,
                p,
                out,
            });
        }
    }
    portable(codes, stride, p, out)
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
    use core::arch::x86_64::*;

    pub(super) fn has_avx512_vnni() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }

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

    /// The AVX2 kernel: 16 codes widen to i16 and `vpmaddwd` multiplies and pairs them into
    /// i32 lanes, two independent accumulators per row. Autovectorisation of the same loop
    /// gives less than half the speed (it widens to i32 first).
    pub(super) struct Avx2Dots<'a> {
        pub simd: pulp::x86::V3,
        pub codes: &'a [i8],
        pub stride: usize,
        pub p: &'a [i16],
        pub out: &'a mut [f32],
    }

    impl pulp::NullaryFnOnce for Avx2Dots<'_> {
        type Output = ();

        #[inline(always)]
        fn call(self) {
            let Avx2Dots {
                simd,
                codes,
                stride,
                p,
                out,
            } = self;
            let (avx, avx2) = (simd.avx, simd.avx2);
            let widen = |x: &[i8]| {
                let x: [i8; 16] = x.try_into().unwrap_or([0; 16]);
                avx2._mm256_cvtepi8_epi16(pulp::cast::<[i8; 16], __m128i>(x))
            };
            let user = |y: &[i16]| {
                let y: [i16; 16] = y.try_into().unwrap_or([0; 16]);
                pulp::cast::<[i16; 16], __m256i>(y)
            };
            for (o, row) in out.iter_mut().zip(codes.chunks_exact(stride)) {
                let (mut acc0, mut acc1) = (avx._mm256_setzero_si256(), avx._mm256_setzero_si256());
                for (x, y) in row.chunks_exact(32).zip(p.chunks_exact(32)) {
                    let (x0, x1) = (widen(&x[..16]), widen(&x[16..]));
                    let (y0, y1) = (user(&y[..16]), user(&y[16..]));
                    acc0 = avx2._mm256_add_epi32(acc0, avx2._mm256_madd_epi16(x0, y0));
                    acc1 = avx2._mm256_add_epi32(acc1, avx2._mm256_madd_epi16(x1, y1));
                }
                let lanes: [i32; 8] = pulp::cast(avx2._mm256_add_epi32(acc0, acc1));
                *o = lanes.iter().sum::<i32>() as f32;
            }
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
                #[cfg(target_arch = "x86_64")]
                {
                    if x86::has_avx512_vnni() {
                        let mut got = vec![f32::NAN; n];
                        // SAFETY: detected just above.
                        unsafe { x86::dots_avx512(&codes, stride, &p, &mut got) };
                        assert_eq!(got, reference, "avx512, stride {stride}, {n} rows");
                    }
                    if let Some(simd) = pulp::x86::V3::try_new() {
                        let mut got = vec![f32::NAN; n];
                        simd.vectorize(x86::Avx2Dots {
                            simd,
                            codes: &codes,
                            stride,
                            p: &p,
                            out: &mut got,
                        });
                        assert_eq!(got, reference, "avx2, stride {stride}, {n} rows");
                    }
                }
            }
        }
    }
}
