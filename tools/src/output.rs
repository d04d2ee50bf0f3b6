//! How runnelctl prints: aligned tables for people (the default), JSON for scripts
//! (`--output json`). A command builds one [`Report`] and prints it once.

use serde_json::Value;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Rows under column headings, and the same data as JSON (an array of objects keyed by the
/// headings, unless a command supplies its own JSON).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub headings: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Overrides the JSON made from the rows (for nested data).
    pub json: Option<Value>,
}

impl Report {
    pub fn new(headings: &[&str]) -> Report {
        Report {
            headings: headings.iter().map(|h| h.to_string()).collect(),
            ..Report::default()
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self, format: Format) {
        match format {
            Format::Table => print!("{}", self.table()),
            Format::Json => println!("{}", self.to_json()),
        }
    }

    /// The table: headings in capitals, columns padded to their widest cell.
    pub fn table(&self) -> String {
        let columns = self.headings.len();
        let mut widths: Vec<usize> = self.headings.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
                .collect();
            format!("{}\n", padded.join("  ").trim_end())
        };
        let mut out = line(self.headings.iter().map(|h| h.to_uppercase()).collect());
        for row in &self.rows {
            out.push_str(&line(row.clone()));
        }
        out
    }

    pub fn to_json(&self) -> Value {
        if let Some(json) = &self.json {
            return json.clone();
        }
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    Value::Object(
                        self.headings
                            .iter()
                            .zip(row)
                            .map(|(h, c)| (h.clone(), Value::String(c.clone())))
                            .collect(),
                    )
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_json_keys_by_heading() {
        let mut report = Report::new(&["topic", "partitions"]);
        report.row(vec!["orders".into(), "12".into()]);
        report.row(vec!["a".into(), "1".into()]);
        assert_eq!(
            report.table(),
            "TOPIC   PARTITIONS\norders  12\na       1\n"
        );
        assert_eq!(
            report.to_json(),
            serde_json::json!([{"topic": "orders", "partitions": "12"}, {"topic": "a", "partitions": "1"}])
        );
    }
}
