//! Build progress on stderr: live bars when stderr is a terminal (one line
//! per layer with bytes written, rate and cache hits, plus a total), plain
//! lines otherwise (CI logs), nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use bake_build::BuiltLayer;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The build's progress reporter; see the module doc.
pub enum Reporter {
    Quiet,
    /// One line per finished layer.
    Plain(Mutex<Vec<String>>),
    Bars(Bars),
}

pub struct Bars {
    multi: MultiProgress,
    layers: Mutex<Vec<ProgressBar>>,
    total: ProgressBar,
}

impl Reporter {
    /// Bars on a terminal, lines otherwise, nothing when `quiet`.
    pub fn new(quiet: bool) -> Reporter {
        if quiet {
            Reporter::Quiet
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total = ProgressBar::hidden();
            Reporter::Bars(Bars {
                multi,
                layers: Mutex::new(Vec::new()),
                total,
            })
        } else {
            Reporter::Plain(Mutex::new(Vec::new()))
        }
    }

    /// Stops the bars, leaving their final lines on the terminal.
    pub fn finish(&self) {
        if let Reporter::Bars(b) = self {
            b.total.finish();
        }
    }
}

fn human_size(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

/// The line for a finished layer, as plain logs and bars both show it.
fn finished_line(layer: &BuiltLayer, elapsed: Duration) -> String {
    if layer.cached {
        "cached".to_owned()
    } else {
        format!(
            "built {} in {:.1}s",
            human_size(layer.descriptor.size),
            elapsed.as_secs_f64()
        )
    }
}

impl bake_build::Progress for Reporter {
    fn plan(&self, names: &[&str]) {
        match self {
            Reporter::Quiet => {}
            Reporter::Plain(n) => {
                *n.lock().unwrap_or_else(|p| p.into_inner()) = names.iter().map(|s| s.to_string()).collect();
            }
            Reporter::Bars(b) => {
                let width = names.iter().map(|n| n.len()).max().unwrap_or(5).max(5);
                let style = ProgressStyle::with_template(&format!(
                    "{{prefix:>{width}}} {{spinner}} {{bytes:>11}} {{binary_bytes_per_sec:>13}} {{msg}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                let mut bars = b.layers.lock().unwrap_or_else(|p| p.into_inner());
                for name in names {
                    let bar = b.multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(format!("layer {name}"));
                    bar.set_message("waiting");
                    bars.push(bar);
                }
                let total_style = ProgressStyle::with_template(&format!(
                    "{{prefix:>{width}}}   {{bytes:>11}} {{binary_bytes_per_sec:>13}} {{elapsed:>5}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                let total = b.multi.add(b.total.clone());
                total.set_style(total_style);
                total.set_prefix("total");
                total.enable_steady_tick(Duration::from_millis(200));
            }
        }
    }

    fn layer_started(&self, index: usize) {
        if let Reporter::Bars(b) = self {
            if let Some(bar) = b.layers.lock().unwrap_or_else(|p| p.into_inner()).get(index) {
                bar.set_message("compressing");
                bar.enable_steady_tick(Duration::from_millis(120));
            }
        }
    }

    fn layer_bytes(&self, index: usize, bytes: u64) {
        if let Reporter::Bars(b) = self {
            if let Some(bar) = b.layers.lock().unwrap_or_else(|p| p.into_inner()).get(index) {
                bar.inc(bytes);
            }
            b.total.inc(bytes);
        }
    }

    fn layer_finished(&self, index: usize, layer: &BuiltLayer, elapsed: Duration) {
        let line = finished_line(layer, elapsed);
        match self {
            Reporter::Quiet => {}
            Reporter::Plain(names) => {
                let names = names.lock().unwrap_or_else(|p| p.into_inner());
                let name = names.get(index).map_or(layer.name.as_str(), String::as_str);
                eprintln!("layer {name}: {line}");
            }
            Reporter::Bars(b) => {
                if let Some(bar) = b.layers.lock().unwrap_or_else(|p| p.into_inner()).get(index) {
                    if layer.cached {
                        bar.set_position(layer.descriptor.size);
                    }
                    bar.finish_with_message(format!("{line}  {}", layer.descriptor.digest.short()));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finished_lines_say_built_or_cached() {
        let mut layer = BuiltLayer {
            name: "app".into(),
            descriptor: bake_image::Descriptor::new("x", bake_digest::Digest::of(b""), 12_900_000),
            diff_id: bake_digest::Digest::of(b""),
            from_base: false,
            cached: false,
        };
        assert_eq!(
            finished_line(&layer, Duration::from_millis(420)),
            "built 12.30 MiB in 0.4s"
        );
        layer.cached = true;
        assert_eq!(finished_line(&layer, Duration::ZERO), "cached");
    }
}
