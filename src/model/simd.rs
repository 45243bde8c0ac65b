//! Run-time choice of the hand-written vector kernels (`kernels`, `int8`).
//!
//! rustc targets baseline x86-64 (SSE2) unless told otherwise, so each wide kernel is a
//! `#[target_feature]` function written with `std::arch` intrinsics, and calling one on a CPU
//! without those features is undefined behaviour. This module is the only place that asks
//! the CPU what it has, and it asks once: every kernel decides from the same cached answer,
//! and its safety argument points here.

use std::sync::OnceLock;

/// The vector extensions the kernels use, as far as this CPU (and its OS) supports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Cpu {
    /// AVX2 and FMA: the 8-lane float kernels and the AVX2 int8 kernel.
    pub avx2_fma: bool,
    /// AVX-512 F: the 16-lane float kernels.
    pub avx512f: bool,
    /// AVX-512 F, BW and VNNI: the int8 kernel built on `vpdpwssd`.
    pub avx512_vnni: bool,
}

impl Cpu {
    #[cfg(target_arch = "x86_64")]
    fn detect() -> Cpu {
        use std::arch::is_x86_feature_detected as has;
        let avx512f = has!("avx512f");
        Cpu {
            avx2_fma: has!("avx2") && has!("fma"),
            avx512f,
            avx512_vnni: avx512f && has!("avx512bw") && has!("avx512vnni"),
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn detect() -> Cpu {
        Cpu::default()
    }
}

/// This CPU's features, detected on first use.
pub(super) fn cpu() -> Cpu {
    static CPU: OnceLock<Cpu> = OnceLock::new();
    *CPU.get_or_init(Cpu::detect)
}

/// Which version of a kernel runs. What a version needs (CPU features, lengths that are a
/// multiple of its lane count) is the kernel's business: each one checks it against [`cpu`]
/// before entering `unsafe` code, so forcing a version the CPU lacks, as tests do to reach
/// every path, can only ever fall back to the portable loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    Avx512,
    Avx2,
    /// Plain Rust, vectorised by LLVM for the baseline target: the fallback everywhere, and
    /// the reference the other versions are tested against.
    Portable,
}

impl Isa {
    /// Widest first, so that the first one a kernel can run is the one to pick.
    pub(super) const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// The first of [`Isa::ALL`] that `runs` accepts ([`Isa::Portable`] always runs).
    pub(super) fn widest(runs: impl Fn(Isa) -> bool) -> Isa {
        Isa::ALL
            .into_iter()
            .find(|&isa| isa == Isa::Portable || runs(isa))
            .unwrap_or(Isa::Portable)
    }

    /// Every version that `runs` accepts, [`Isa::Portable`] included: what a kernel's tests
    /// compare with the portable reference.
    #[cfg(test)]
    pub(super) fn every(runs: impl Fn(Isa) -> bool) -> Vec<Isa> {
        Isa::ALL
            .into_iter()
            .filter(|&isa| isa == Isa::Portable || runs(isa))
            .collect()
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
}

/// Asks for every cache line of `data`: for rows picked at random from a matrix far larger
/// than the caches, which the hardware prefetcher cannot guess.
#[inline(always)]
pub(super) fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks(64 / std::mem::size_of::<f32>()) {
        // SAFETY: `_mm_prefetch` is SSE, part of baseline x86-64, and a prefetch of a valid
        // address has no effect beyond the cache.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_is_cached_and_consistent() {
        let c = cpu();
        assert_eq!(c, cpu());
        assert!(!c.avx512_vnni || c.avx512f);
        assert_eq!(Isa::widest(|_| false), Isa::Portable);
        assert_eq!(Isa::widest(|isa| isa != Isa::Avx512), Isa::Avx2);
        assert_eq!(Isa::every(|_| true), Isa::ALL);
        assert_eq!(Isa::every(|_| false), [Isa::Portable]);
    }
}
