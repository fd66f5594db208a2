//! Progress bars for long CLI work (drawn on standard error, hidden when it is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting bytes.
pub fn bytes_bar(stage: &str, total: u64) -> ProgressBar {
    bar(
        stage,
        total,
        "{prefix:>8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
}

/// A bar counting rows.
pub fn rows_bar(stage: &str, total: u64) -> ProgressBar {
    bar(
        stage,
        total,
        "{prefix:>8} [{bar:40}] {human_pos}/{human_len} rows {per_sec} eta {eta}",
    )
}

fn bar(stage: &str, total: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(stage.to_string());
    bar
}
