//! The self-contained HTML report of a simulation: the run's JSON, the shared chart code and a
//! page script in one file that opens offline.

use super::report::Report;

const PAGE_JS: &str = include_str!("report.js");

/// The report as one HTML document.
pub fn render(report: &Report) -> String {
    // JSON inside a script element: `</` must not close it.
    let data = serde_json::to_string(report).expect("a report serialises").replace("</", "<\\/");
    let title = html_escape(&format!("tollgate simulate: {} at {}x", report.scenario, report.overload));
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1340px; color: #111827; padding: 0 16px; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
table {{ border-collapse: collapse; margin: 8px 0; }} td, th {{ padding: 3px 10px; border-bottom: 1px solid #e5e7eb; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }} .grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }}
.note {{ color: #4b5563; max-width: 900px; }}
</style></head>
<body><h1>{title}</h1><div id="summary"></div><div id="charts"></div>
<script>{charts}</script>
<script id="data" type="application/json">{data}</script>
<script>{page}</script>
</body></html>
"#,
        charts = crate::dashboard::CHARTS_JS,
        page = PAGE_JS,
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
