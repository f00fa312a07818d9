//! Progress of the long command-line jobs (`export`, `rebuild`) on standard error: a bar with
//! the count, the rate and the time left, redrawn in place; nothing at all when standard error
//! is not a terminal (a pipe, a log file, CI), so output stays clean there.

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A bar over `total` things called `unit` ("sessions", "traces").
pub fn bar(total: u64, unit: &str) -> ProgressBar {
    // The template is ours; should it ever not parse, indicatif's plain bar still shows progress.
    let style = style(unit).unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(total).with_style(style)
}

fn style(unit: &str) -> Result<ProgressStyle, indicatif::style::TemplateError> {
    let template = format!(
        "[{{bar:30}}] {{percent:>3}}% {{human_pos}}/{{human_len}} {unit}, {{rate}}, {{eta}} left"
    );
    Ok(ProgressStyle::with_template(&template)?
        .progress_chars("#>.")
        // indicatif's {per_sec} shows four decimals; whole things per second read better.
        .with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_and_the_bar_hides_without_a_terminal() {
        assert!(style("sessions").is_ok());
        // Tests run with standard error captured, as under CI or in a pipe.
        let bar = bar(10, "sessions");
        bar.inc(4);
        assert!(bar.is_hidden());
        assert_eq!(bar.position(), 4);
    }
}
