//! Build progress on stderr: live bars when stderr is a terminal (one line
//! per layer with bytes written, rate and cache hits, plus a total), plain
//! lines otherwise (CI logs), nothing with `--quiet`. The output of `run`
//! steps streams there too, each line prefixed with `[layer]`.
//!
//! Everything is also kept in the build log ([`BuildLog`]): the same lines
//! in plain form, each with the time since the build started, whatever
//! stderr shows (bars, lines or nothing), then the result or the error.

use std::fs::File;
use std::io::{IsTerminal, LineWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bake_build::BuiltLayer;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What stderr shows; see the module doc.
enum View {
    Quiet,
    /// One line per finished layer.
    Plain,
    Bars(Bars),
}

struct Bars {
    multi: MultiProgress,
    layers: Mutex<Vec<ProgressBar>>,
    total: ProgressBar,
}

/// The build's progress reporter; see the module doc.
pub struct Reporter {
    view: View,
    /// The recipe's layer names, in order.
    names: Mutex<Vec<String>>,
    log: Option<BuildLog>,
}

/// A file that keeps every line of a build, as it happens. It is written
/// line by line, so a build that fails or is killed leaves a log that ends
/// where the build did.
pub struct BuildLog {
    path: PathBuf,
    started: Instant,
    /// The first write that failed replaces the file: it is reported at the
    /// end, and nothing more is written.
    file: Mutex<Result<LineWriter<File>, std::io::Error>>,
}

impl BuildLog {
    /// Creates (or truncates) the log at `path`.
    pub fn create(path: &Path) -> anyhow::Result<BuildLog> {
        let file = File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot write the build log {}: {e}", path.display()))?;
        Ok(BuildLog {
            path: path.to_owned(),
            started: Instant::now(),
            file: Mutex::new(Ok(LineWriter::new(file))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `line` (raw bytes: `run` output need not be UTF-8) after
    /// the time since the build started.
    fn line(&self, parts: &[&[u8]]) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(w) = file.as_mut() {
            let stamp = format!("[{:>8.3}s] ", self.started.elapsed().as_secs_f64());
            let mut write = || -> std::io::Result<()> {
                w.write_all(stamp.as_bytes())?;
                for part in parts {
                    w.write_all(part)?;
                }
                w.write_all(b"\n")
            };
            if let Err(e) = write() {
                *file = Err(e);
            }
        }
    }

    /// Appends each line of `text`.
    pub fn text(&self, text: &str) {
        for line in text.lines() {
            self.line(&[line.as_bytes()]);
        }
    }

    /// Flushes the log; the first write that failed, if one did.
    pub fn finish(&self) -> anyhow::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let result = match file.as_mut() {
            Ok(w) => w.flush(),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        };
        result.map_err(|e| anyhow::anyhow!("cannot write the build log {}: {e}", self.path.display()))
    }
}

impl Reporter {
    /// Bars on a terminal, lines otherwise, nothing when `quiet`; every
    /// line also goes to `log`.
    pub fn new(quiet: bool, log: Option<BuildLog>) -> Reporter {
        let view = if quiet {
            View::Quiet
        } else if std::io::stderr().is_terminal() {
            View::Bars(Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                layers: Mutex::new(Vec::new()),
                total: ProgressBar::hidden(),
            })
        } else {
            View::Plain
        };
        Reporter {
            view,
            names: Mutex::new(Vec::new()),
            log,
        }
    }

    /// Stops the bars, leaving their final lines on the terminal.
    pub fn finish(&self) {
        if let View::Bars(b) = &self.view {
            b.total.finish();
        }
    }

    pub fn log(&self) -> Option<&BuildLog> {
        self.log.as_ref()
    }

    fn name(&self, index: usize) -> String {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("#{}", index + 1))
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

/// The line for a base layer a docker-archive held uncompressed.
fn base_compressed_line(
    index: usize,
    from: &bake_image::Descriptor,
    to: &bake_image::Descriptor,
    compression: &str,
    cached: bool,
) -> String {
    format!(
        "base layer {}: uncompressed in the docker archive ({}, {}), compressed with {compression} to {} ({}){}",
        index + 1,
        human_size(from.size),
        from.digest.short(),
        human_size(to.size),
        to.digest.short(),
        if cached { ", from the cache" } else { "" }
    )
}

/// A build warning as stderr and the log show it: one line.
fn warning_line(layer: &str, message: &str) -> String {
    let line = format!("warning: layer {layer}: {message}");
    line.replace(['\n', '\r'], " ")
}

impl Reporter {
    /// A line of its own: in the log, and on stderr (above the bars) unless
    /// quiet.
    fn note(&self, line: &str) {
        if let Some(log) = &self.log {
            log.text(line);
        }
        match &self.view {
            View::Quiet => {}
            View::Plain => eprintln!("{line}"),
            View::Bars(b) => b.multi.suspend(|| eprintln!("{line}")),
        }
    }
}

impl bake_build::Progress for Reporter {
    fn plan(&self, names: &[&str]) {
        *self.names.lock().unwrap_or_else(|p| p.into_inner()) = names.iter().map(|s| s.to_string()).collect();
        if let Some(log) = &self.log {
            log.text(&format!("layers: {}", names.join(", ")));
        }
        if let View::Bars(b) = &self.view {
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

    fn layer_started(&self, index: usize) {
        if let Some(log) = &self.log {
            log.text(&format!("layer {}: building", self.name(index)));
        }
        if let View::Bars(b) = &self.view {
            if let Some(bar) = b.layers.lock().unwrap_or_else(|p| p.into_inner()).get(index) {
                bar.set_message("compressing");
                bar.enable_steady_tick(Duration::from_millis(120));
            }
        }
    }

    fn layer_bytes(&self, index: usize, bytes: u64) {
        if let View::Bars(b) = &self.view {
            if let Some(bar) = b.layers.lock().unwrap_or_else(|p| p.into_inner()).get(index) {
                bar.inc(bytes);
            }
            b.total.inc(bytes);
        }
    }

    fn layer_finished(&self, index: usize, layer: &BuiltLayer, elapsed: Duration) {
        let line = finished_line(layer, elapsed);
        let name = self.name(index);
        if let Some(log) = &self.log {
            log.text(&format!("layer {name}: {line} {}", layer.descriptor.digest));
        }
        match &self.view {
            View::Quiet => {}
            View::Plain => eprintln!("layer {name}: {line}"),
            View::Bars(b) => {
                if let Some(bar) = b.layers.lock().unwrap_or_else(|p| p.into_inner()).get(index) {
                    if layer.cached {
                        bar.set_position(layer.descriptor.size);
                    }
                    bar.finish_with_message(format!("{line}  {}", layer.descriptor.digest.short()));
                }
            }
        }
    }

    fn base_layer_compressed(
        &self,
        index: usize,
        from: &bake_image::Descriptor,
        to: &bake_image::Descriptor,
        compression: &str,
        cached: bool,
    ) {
        self.note(&base_compressed_line(index, from, to, compression, cached));
    }

    fn warning(&self, index: usize, message: &str) {
        self.note(&warning_line(&self.name(index), message));
    }

    fn output(&self, index: usize, line: &[u8]) {
        let prefix = format!("[{}] ", self.name(index));
        if let Some(log) = &self.log {
            log.line(&[prefix.as_bytes(), line]);
        }
        let print = || {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(prefix.as_bytes());
            let _ = err.write_all(line);
            let _ = err.write_all(b"\n");
        };
        match &self.view {
            View::Quiet => {}
            View::Plain => print(),
            // Above the bars, which are redrawn below it.
            View::Bars(b) => b.multi.suspend(print),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_one_line_naming_the_layer() {
        assert_eq!(
            warning_line("tools", "\"/usr/bin/x\": extended attribute \"user.a\" dropped"),
            "warning: layer tools: \"/usr/bin/x\": extended attribute \"user.a\" dropped"
        );
        assert_eq!(warning_line("a", "b\nc"), "warning: layer a: b c");
    }

    #[test]
    fn finished_lines_say_built_or_cached() {
        let mut layer = BuiltLayer {
            name: "app".into(),
            descriptor: bake_image::Descriptor::new("x", bake_digest::Digest::of(b""), 12_900_000),
            diff_id: bake_digest::Digest::of(b""),
            from_base: false,
            cached: false,
            compressed: false,
        };
        assert_eq!(
            finished_line(&layer, Duration::from_millis(420)),
            "built 12.30 MiB in 0.4s"
        );
        layer.cached = true;
        assert_eq!(finished_line(&layer, Duration::ZERO), "cached");
    }

    #[test]
    fn compressed_base_layers_are_named_with_both_sizes() {
        let from = bake_image::Descriptor::new("x", bake_digest::Digest::of(b"a"), 3 << 20);
        let to = bake_image::Descriptor::new("y", bake_digest::Digest::of(b"b"), 1 << 20);
        let line = base_compressed_line(0, &from, &to, "gzip-6/zlib-rs/chunked-1MiB", false);
        assert_eq!(
            line,
            format!(
                "base layer 1: uncompressed in the docker archive (3.00 MiB, {}), compressed with \
                 gzip-6/zlib-rs/chunked-1MiB to 1.00 MiB ({})",
                from.digest.short(),
                to.digest.short()
            )
        );
        assert!(base_compressed_line(1, &from, &to, "z", true).ends_with(", from the cache"));
    }
}
