//! A numeric CSV table, for a reference record's published series: files
//! rtbench did not write (Tsung's exports), whose columns are not ours to
//! type, each a header line and numbers below it. Our own series are read
//! as their typed rows (`rows`). A bad cell is an error naming file, line
//! and column.

use anyhow::{Context, Result, anyhow};
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Table> {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        Table::parse(&text).map_err(|e| anyhow!("{}:{e}", path.display()))
    }

    /// Errors are `line: message`, for the caller to prefix with the file.
    pub fn parse(text: &str) -> Result<Table> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or_else(|| anyhow!("1: no header line"))?;
        let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
        let mut rows = Vec::new();
        for (i, line) in lines {
            let cells: Vec<&str> = line.split(',').collect();
            if cells.len() != columns.len() {
                return Err(anyhow!(
                    "{}: {} fields, the header has {}",
                    i + 1,
                    cells.len(),
                    columns.len()
                ));
            }
            let row = cells
                .iter()
                .zip(&columns)
                .map(|(c, name)| {
                    c.trim().parse::<f64>().map_err(|_| {
                        anyhow!("{}: column `{name}`: `{}` is not a number", i + 1, c.trim())
                    })
                })
                .collect::<Result<Vec<f64>>>()?;
            rows.push(row);
        }
        Ok(Table { columns, rows })
    }

    pub fn col(&self, name: &str) -> Option<Vec<f64>> {
        let i = self.columns.iter().position(|c| c == name)?;
        Some(self.rows.iter().map(|r| r[i]).collect())
    }

    /// Points (x column, y column), with `f` applied to y.
    pub fn xy(&self, x: &str, y: &str, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        match (self.col(x), self.col(y)) {
            (Some(xs), Some(ys)) => xs.into_iter().zip(ys.into_iter().map(f)).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_a_bad_cell() {
        let t = Table::parse("t,a\n0,1\n1,2.5\n").unwrap();
        assert_eq!(t.col("a").unwrap(), vec![1.0, 2.5]);
        assert_eq!(t.xy("t", "a", |v| v * 2.0), vec![(0.0, 2.0), (1.0, 5.0)]);
        assert_eq!(
            Table::parse("t,a\n0,1\n1,x\n").unwrap_err().to_string(),
            "3: column `a`: `x` is not a number"
        );
        assert_eq!(
            Table::parse("t,a\n0\n").unwrap_err().to_string(),
            "2: 1 fields, the header has 2"
        );
    }
}
