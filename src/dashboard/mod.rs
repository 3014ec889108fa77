//! The operator's web views. For now the chart code, which the simulator's HTML report embeds;
//! the live dashboard (issue 9) will serve the same file.

/// Plain-JavaScript SVG line and bar charts (`window.TollgateCharts`).
pub const CHARTS_JS: &str = include_str!("assets/charts.js");
