// A small SVG writer and the two charts of `semrouter bench`: accuracy against tokens per
// configuration (a scatter), and accuracy per category (grouped bars). Plain SVG text: no
// script, no external fonts or styles, so the files open anywhere and diff cleanly.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/bench_report.h"

namespace semrouter::app {

// &, <, >, " and ' as entities.
std::string svg_escape(std::string_view s);

// Appends SVG elements to a document of a fixed size. Numbers are written with one decimal.
class SvgWriter {
public:
  // `title` becomes the <title> and the aria-label (what a screen reader says).
  SvgWriter(double width, double height, std::string_view title);
  void rect(double x, double y, double w, double h, std::string_view fill,
            std::string_view stroke = "none");
  void line(double x1, double y1, double x2, double y2, std::string_view stroke, double width = 1,
            bool dashed = false);
  void circle(double cx, double cy, double r, std::string_view fill);
  // A closed shape through the points (x0, y0, x1, y1, ...).
  void polygon(const std::vector<double>& xy, std::string_view fill);
  enum class Anchor { Start, Middle, End };
  void text(double x, double y, std::string_view s, Anchor anchor = Anchor::Start, double size = 12,
            bool bold = false, double rotate = 0);
  // The document, closed. The writer is spent afterwards.
  std::string finish();

private:
  std::string out_;
};

// Tick values from `lo` to at least `hi` at a 1, 2 or 5 x 10^k step, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

enum class PointKind { Fixed, AlwaysReasoning, Routed };
struct ScatterPoint {
  std::string label;
  double x = 0, y = 0;
  PointKind kind = PointKind::Fixed;
};
// y is an accuracy (0..1); x from 0 to the largest x (rounded up to a tick).
std::string scatter_chart(std::string_view title, std::string_view x_label,
                          std::string_view y_label, const std::vector<ScatterPoint>& points);

// values[s][g]: series s in group g (nullopt: no bar). y from 0 to 1.
std::string grouped_bar_chart(std::string_view title, std::string_view y_label,
                              const std::vector<std::string>& groups,
                              const std::vector<std::string>& series,
                              const std::vector<std::vector<std::optional<double>>>& values);

// The report's charts. Empty when no configuration has a gradable answer (nothing to plot).
std::string accuracy_vs_tokens_svg(const BenchReport& report);
std::string category_accuracy_svg(const BenchReport& report);

} // namespace semrouter::app
