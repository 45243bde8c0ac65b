use recloop::model::synthetic::{planted, random_factors};
use recloop::model::{als, AlsModel, AlsParams, Interactions};
fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    let data = Interactions::from_events(943, 1682, &planted(943, 1682, 20, 85, 1));
    match what.as_str() {
        "cg" => { std::hint::black_box(als::fit(&data, &AlsParams::default())); }
        "chol" => { std::hint::black_box(als::fit(&data, &AlsParams { cg_steps: 0, iterations: 3, ..AlsParams::default() })); }
        "fold" => {
            let m = AlsModel::from_item_factors(AlsParams::default(), random_factors(20000, 128, 9));
            let h: Vec<(u32, f32)> = (0..50).map(|j| ((j * 20) as u32, 1.0)).collect();
            for _ in 0..2000 { std::hint::black_box(m.fold_in(std::hint::black_box(&h))); }
        }
        "sim" => {
            let m = AlsModel::from_item_factors(AlsParams::default(), random_factors(20000, 128, 9));
            let t = std::time::Instant::now();
            let l = recloop::model::similarity::similar_items(&m, 20);
            println!("sim 20000x128: {:.2}s {}", t.elapsed().as_secs_f64(), l[0].len());
        }
        _ => {}
    }
}
