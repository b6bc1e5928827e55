//! Progress bars for reading and writing files.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar's layout: message, elapsed time, bar, bytes done of total, throughput, time left.
const BYTES_TEMPLATE: &str = "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)";

/// A progress bar over `total_bytes` drawn on stderr, or a hidden one unless `enabled` and
/// stderr is a terminal (so that pipes, logs and tests get no control characters).
pub fn progress_bar(total_bytes: u64, message: &str, enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
    // The template is a constant; should indicatif ever reject it, the default style remains.
    if let Ok(style) = ProgressStyle::with_template(BYTES_TEMPLATE) {
        bar.set_style(style);
    }
    bar.set_message(message.to_string());
    bar
}
