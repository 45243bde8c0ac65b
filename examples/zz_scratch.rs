use recloop::model::synthetic::random_factors;
use recloop::model::{AlsModel, AlsParams};
use std::time::Instant;
fn minrun(f: &mut dyn FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3000 { let t = Instant::now(); f(); best = best.min(t.elapsed().as_secs_f64()); }
    best * 1e6
}
fn main() {
    let k = 128;
    let m = AlsModel::from_item_factors(AlsParams::default(), random_factors(20000, k, 9));
    for len in [1usize] {
        let h: Vec<(u32, f32)> = (0..len).map(|j| ((j * 20) as u32, 1.0)).collect();
        let t = minrun(&mut || { std::hint::black_box(m.fold_in(std::hint::black_box(&h))); });
        println!("fold_in {len}: {t:.1} us");
    }
    let x = m.fold_in(&[(1, 1.0)]);
    let mut out = vec![0.0; 20000];
    let t = minrun(&mut || m.score_into(&x, &mut out));
    println!("score_into 20000: {t:.1} us");
}
