//! Browser tests: `wasm-pack test --headless --chrome` (see `./x test`). They run in one page,
//! so they share the WebGPU device that `backend::acquire` initialises once.
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use gdl_lab::backend::{self, BackendKind};
use gdl_lab::train::{TrainingConfig, TrainingSession};
use gdl_lab::volume::{SyntheticConfig, synthetic_volume};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};
use web_time::Instant;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn webgpu_trains_simple_model_for_three_steps_at_16_cubed() {
    let compute = backend::acquire().await;
    console_log!("adapter: {}", compute.describe());
    assert_eq!(
        compute.adapter.backend,
        BackendKind::WebGpu,
        "WebGPU did not initialise: {:?}",
        compute.fallback_reason
    );
    assert!(compute.adapter.max_buffer_size.unwrap_or(0) > 0);

    // The mixed loss with the GDL already on (λ = 0.5 from the first step), so that the whole
    // loss code runs on WebGPU.
    let config = TrainingConfig {
        warmup_epochs: 0.0,
        schedule: gdl_lab::loss::Schedule::Linear,
        ramp_epochs: 2.0,
        steps_per_epoch: 1,
        ..TrainingConfig::quick(16)
    };
    let volume = synthetic_volume(SyntheticConfig::default());
    let mut session =
        TrainingSession::new(config, &volume, &compute.device).expect("valid settings");
    let mut losses = Vec::new();
    for _ in 0..3 {
        let report = session.step().await.expect("a training step failed");
        console_log!(
            "WebGPU step {}: λ {:.2}, total {:.5} (BCE {:.5}, GDL {:.5}), grad norm {:.4}, {:.0} ms",
            report.step,
            report.lambda,
            report.total,
            report.warmup,
            report.gdl,
            report.grad_norm,
            report.millis
        );
        assert!((0.0..=1.0).contains(&report.gdl), "{report:?}");
        assert_eq!(report.dice.len(), 4);
        losses.push(report.warmup);
    }
    assert!(losses.iter().all(|loss| loss.is_finite()), "{losses:?}");
    let evaluation = session.evaluate().await.expect("sliding-window prediction");
    console_log!(
        "WebGPU evaluation: hard Dice {:?}, {:.0} ms",
        evaluation.dice,
        evaluation.millis
    );
    assert_eq!(evaluation.labels.len(), volume.voxel_count());
    assert!(
        losses.windows(2).all(|pair| pair[1] < pair[0]),
        "the BCE term did not decrease at every step: {losses:?}"
    );
}

fn document() -> web_sys::Document {
    web_sys::window().unwrap().document().unwrap()
}

fn by_test_id(root: &web_sys::Element, id: &str) -> web_sys::HtmlElement {
    root.query_selector(&format!("[data-test='{id}']"))
        .unwrap()
        .unwrap_or_else(|| panic!("no element with data-test='{id}'"))
        .dyn_into()
        .unwrap()
}

/// Polls `condition` every 50 ms until it holds, failing after `limit`.
async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        gloo_timers::future::TimeoutFuture::new(50).await;
    }
}

#[wasm_bindgen_test]
async fn clicking_train_demo_shows_steps_and_loss_on_the_page() {
    let root = document().create_element("div").unwrap();
    document().body().unwrap().append_child(&root).unwrap();
    let handle = leptos::mount::mount_to(root.clone().unchecked_into(), gdl_lab::app::App);

    let train: web_sys::HtmlButtonElement = by_test_id(&root, "train").unchecked_into();
    wait_until("the device to be ready", Duration::from_secs(60), || {
        !train.disabled()
    })
    .await;
    console_log!(
        "page backend: {}",
        by_test_id(&root, "backend").inner_text()
    );
    train.click();

    let step = || {
        by_test_id(&root, "step")
            .inner_text()
            .parse::<usize>()
            .unwrap_or(0)
    };
    wait_until("three training steps", Duration::from_secs(120), || {
        step() >= 3
    })
    .await;
    let loss_text = by_test_id(&root, "loss").inner_text();
    let loss: f32 = loss_text
        .parse()
        .unwrap_or_else(|_| panic!("the loss shown is not a number: {loss_text:?}"));
    let first_text = by_test_id(&root, "first-loss").inner_text();
    let first: f32 = first_text
        .trim_start_matches("from ")
        .parse()
        .unwrap_or_else(|_| panic!("the first loss shown is not a number: {first_text:?}"));
    // A wrong GPU kernel once made this 3366 after two steps; training must lower the loss.
    assert!(
        loss.is_finite() && loss > 0.0 && loss < first,
        "loss shown: {loss}, first loss: {first}"
    );
    // The mixed loss's parts are on the page too; with valid inputs the GDL lies in [0, 1].
    let gdl_text = by_test_id(&root, "gdl").inner_text();
    let gdl: f32 = gdl_text
        .parse()
        .unwrap_or_else(|_| panic!("the GDL shown is not a number: {gdl_text:?}"));
    assert!((0.0..=1.0).contains(&gdl), "GDL shown: {gdl}");
    assert!(
        by_test_id(&root, "lambda")
            .inner_text()
            .parse::<f64>()
            .is_ok()
    );
    let millis_text = by_test_id(&root, "millis").inner_text();
    assert!(
        millis_text.parse::<f64>().is_ok(),
        "ms/step shown: {millis_text:?}"
    );
    console_log!(
        "page shows step {}, loss {loss_text}, {millis_text} ms/step",
        step()
    );

    // Stop ends the run: the train button comes back.
    by_test_id(&root, "stop").click();
    wait_until("training to stop", Duration::from_secs(60), || {
        !train.disabled()
    })
    .await;
    assert_eq!(by_test_id(&root, "status").inner_text(), "done");
    assert!(
        root.query_selector("[data-test='train-error']")
            .unwrap()
            .is_none(),
        "an error was shown"
    );
    drop(handle);
}
