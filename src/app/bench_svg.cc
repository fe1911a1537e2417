#include "app/bench_svg.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>

namespace semrouter::app {
namespace {

// Okabe–Ito: distinguishable with the common colour-vision deficiencies.
const std::vector<std::string_view> kPalette = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                                "#56B4E9", "#D55E00", "#999933", "#000000"};
constexpr std::string_view kGrid = "#dddddd";
constexpr std::string_view kAxis = "#333333";
constexpr std::string_view kFixedColour = "#009E73";
constexpr std::string_view kReasoningColour = "#0072B2";
constexpr std::string_view kRoutedColour = "#D55E00";
// Label layout in the 12 px sans-serif the charts use: an average character's width (an
// estimate: no font metrics here) and a line's height; points closer than kSameSpot share a label.
constexpr double kCharWidth = 6.8;
constexpr double kLineHeight = 14;
constexpr double kSameSpot = 4;
constexpr double kMarkerRadius = 8;
// A bar for 0 is this tall, so that it shows (a missing value has no bar at all).
constexpr double kZeroBar = 2;

std::string tick_label(double v) {
  std::string s = fmt::format("{:.3g}", v);
  return s;
}

} // namespace

std::string svg_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
    case '&':
      o += "&amp;";
      break;
    case '<':
      o += "&lt;";
      break;
    case '>':
      o += "&gt;";
      break;
    case '"':
      o += "&quot;";
      break;
    case '\'':
      o += "&#39;";
      break;
    default:
      o += c;
    }
  }
  return o;
}

SvgWriter::SvgWriter(double width, double height, std::string_view title) {
  out_ = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
                     "viewBox=\"0 0 {:.0f} {:.0f}\" role=\"img\" aria-label=\"{}\" "
                     "font-family=\"sans-serif\" font-size=\"12\">\n<title>{}</title>\n",
                     width, height, width, height, svg_escape(title), svg_escape(title));
  rect(0, 0, width, height, "white");
}

void SvgWriter::rect(double x, double y, double w, double h, std::string_view fill,
                     std::string_view stroke) {
  out_ += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
                      "fill=\"{}\" stroke=\"{}\"/>\n",
                      x, y, w, h, fill, stroke);
}

void SvgWriter::line(double x1, double y1, double x2, double y2, std::string_view stroke,
                     double width, bool dashed) {
  out_ += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" "
                      "stroke=\"{}\" stroke-width=\"{:.1f}\"{}/>\n",
                      x1, y1, x2, y2, stroke, width, dashed ? " stroke-dasharray=\"4,3\"" : "");
}

void SvgWriter::circle(double cx, double cy, double r, std::string_view fill) {
  out_ += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{:.1f}\" fill=\"{}\"/>\n", cx, cy, r,
                      fill);
}

void SvgWriter::polygon(const std::vector<double>& xy, std::string_view fill) {
  std::string pts;
  for (size_t i = 0; i + 1 < xy.size(); i += 2)
    pts += fmt::format("{}{:.1f},{:.1f}", i ? " " : "", xy[i], xy[i + 1]);
  out_ += fmt::format("<polygon points=\"{}\" fill=\"{}\"/>\n", pts, fill);
}

void SvgWriter::text(double x, double y, std::string_view s, Anchor anchor, double size, bool bold,
                     double rotate) {
  const char* a = anchor == Anchor::Start ? "start" : anchor == Anchor::Middle ? "middle" : "end";
  std::string extra;
  if (size != 12)
    extra += fmt::format(" font-size=\"{:.0f}\"", size);
  if (bold)
    extra += " font-weight=\"bold\"";
  if (rotate != 0)
    extra += fmt::format(" transform=\"rotate({:.0f} {:.1f} {:.1f})\"", rotate, x, y);
  out_ += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\"{}>{}</text>\n", x, y, a,
                      extra, svg_escape(s));
}

std::string SvgWriter::finish() {
  out_ += "</svg>\n";
  return std::move(out_);
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo))
    hi = lo + 1;
  target = std::max(target, 1);
  const double raw = (hi - lo) / target;
  const int exponent = static_cast<int>(std::floor(std::log10(raw)));
  // A tick is (k * m) x 10^exponent; below 1 it is computed as (k * m) / 10^-exponent, an exact
  // integer over an exact power of ten, so 0.3 comes out as 0.3 and not 0.30000000000000004.
  const double scale = std::pow(10.0, std::abs(exponent));
  auto value = [&](double units) { return exponent >= 0 ? units * scale : units / scale; };
  double m = 1;
  for (double candidate : {1.0, 2.0, 5.0, 10.0}) {
    m = candidate;
    if (value(m) >= raw)
      break;
  }
  std::vector<double> ticks;
  const double step = value(m);
  for (double k = std::floor(lo / step);; k += 1) {
    const double v = value(k * m);
    ticks.push_back(v == 0 ? 0.0 : v); // no -0
    if (v >= hi - step * 1e-9)
      break;
  }
  return ticks;
}

std::string scatter_chart(std::string_view title, std::string_view x_label,
                          std::string_view y_label, const std::vector<ScatterPoint>& points) {
  // The legend goes under the x axis, so the plot gets the whole width for its labels.
  const double W = 720, H = 480, L = 70, R = 30, T = 46, B = 80;
  const double pw = W - L - R, ph = H - T - B;
  double x_max = 0;
  for (const auto& p : points)
    x_max = std::max(x_max, p.x);
  // Headroom on the right, so the rightmost point is not on the frame.
  std::vector<double> xt = nice_ticks(0, x_max > 0 ? x_max * 1.15 : 1, 5);
  const double x_hi = xt.back();
  auto X = [&](double x) { return L + x / x_hi * pw; };
  auto Y = [&](double y) { return T + (1 - std::clamp(y, 0.0, 1.0)) * ph; };
  SvgWriter svg(W, H, title);
  svg.text(L, 26, title, SvgWriter::Anchor::Start, 15, true);
  for (double v : xt) {
    svg.line(X(v), T, X(v), T + ph, kGrid);
    svg.text(X(v), T + ph + 16, tick_label(v), SvgWriter::Anchor::Middle);
  }
  for (int i = 0; i <= 5; ++i) {
    double v = i / 5.0;
    svg.line(L, Y(v), L + pw, Y(v), kGrid);
    svg.text(L - 6, Y(v) + 4, tick_label(v), SvgWriter::Anchor::End);
  }
  svg.rect(L, T, pw, ph, "none", kAxis);
  svg.text(L + pw / 2, T + ph + 36, x_label, SvgWriter::Anchor::Middle);
  svg.text(18, T + ph / 2, y_label, SvgWriter::Anchor::Middle, 12, false, -90);
  auto marker = [&](double x, double y, PointKind k) {
    if (k == PointKind::Routed) {
      svg.polygon({x, y - 8, x + 8, y, x, y + 8, x - 8, y}, kRoutedColour);
    } else if (k == PointKind::AlwaysReasoning) {
      svg.rect(x - 6, y - 6, 12, 12, kReasoningColour);
    } else {
      svg.circle(x, y, 6, kFixedColour);
    }
  };
  // Points drawn on the same spot share one label, a name per line. A label goes right of its
  // point, else left: the first place inside the plot and clear of every marker and label placed
  // so far, trying a line further down or up at a time.
  struct Box {
    double x0, y0, x1, y1;
    bool overlaps(const Box& o) const { return x0 < o.x1 && x1 > o.x0 && y0 < o.y1 && y1 > o.y0; }
  };
  std::vector<Box> placed;
  for (const auto& p : points)
    placed.push_back({X(p.x) - kMarkerRadius, Y(p.y) - kMarkerRadius, X(p.x) + kMarkerRadius,
                      Y(p.y) + kMarkerRadius});
  std::vector<bool> done(points.size(), false);
  for (size_t i = 0; i < points.size(); ++i) {
    if (done[i])
      continue;
    const double px = X(points[i].x), py = Y(points[i].y);
    std::vector<std::string> lines{points[i].label};
    marker(px, py, points[i].kind);
    for (size_t j = i + 1; j < points.size(); ++j)
      if (!done[j] && std::abs(X(points[j].x) - px) < kSameSpot &&
          std::abs(Y(points[j].y) - py) < kSameSpot) {
        lines.push_back(points[j].label);
        marker(X(points[j].x), Y(points[j].y), points[j].kind);
        done[j] = true;
      }
    double width = 0;
    for (const auto& l : lines)
      width = std::max(width, kCharWidth * static_cast<double>(l.size()));
    const double height = kLineHeight * static_cast<double>(lines.size());
    // The first line's baseline just above the point, then steps of a line.
    auto box_at = [&](bool left, double baseline) {
      const double x0 = left ? px - 10 - width : px + 10;
      return Box{x0, baseline - kLineHeight, x0 + width, baseline - kLineHeight + height};
    };
    Box chosen = box_at(false, py - 8);
    bool left = false;
    bool found = false;
    for (int step = 0; step < 40 && !found; ++step) {
      const double baseline = py - 8 + kLineHeight * (step % 2 ? (step + 1) / 2 : -(step / 2));
      for (bool try_left : {false, true}) {
        Box b = box_at(try_left, baseline);
        if (b.x0 < L || b.x1 > L + pw || b.y0 < T || b.y1 > T + ph)
          continue;
        bool clear = true;
        for (const Box& o : placed)
          clear = clear && !b.overlaps(o);
        if (clear) {
          chosen = b;
          left = try_left;
          found = true;
          break;
        }
      }
    }
    placed.push_back(chosen);
    for (size_t k = 0; k < lines.size(); ++k)
      svg.text(left ? chosen.x1 : chosen.x0,
               chosen.y0 + kLineHeight * static_cast<double>(k + 1) - 3, lines[k],
               left ? SvgWriter::Anchor::End : SvgWriter::Anchor::Start);
  }
  // The legend, in a row under the axis label: one entry per kind present.
  std::set<PointKind> kinds;
  for (const auto& p : points)
    kinds.insert(p.kind);
  double lx = L;
  const double ly = H - 14;
  const std::pair<PointKind, std::string_view> names[] = {
      {PointKind::Routed, "routed (the router decides)"},
      {PointKind::AlwaysReasoning, "reasoning always on"},
      {PointKind::Fixed, "fixed model"}};
  for (const auto& [k, name] : names) {
    if (!kinds.count(k))
      continue;
    marker(lx + 8, ly - 4, k);
    svg.text(lx + 22, ly, name);
    lx += 40 + kCharWidth * static_cast<double>(name.size());
  }
  return svg.finish();
}

std::string grouped_bar_chart(std::string_view title, std::string_view y_label,
                              const std::vector<std::string>& groups,
                              const std::vector<std::string>& series,
                              const std::vector<std::vector<std::optional<double>>>& values) {
  const double bar = 16, gap = 22, L = 70, R = 200, T = 46, B = 96;
  const double group_w = bar * static_cast<double>(std::max<size_t>(series.size(), 1)) + gap;
  const double pw = std::max(360.0, group_w * static_cast<double>(groups.size()));
  const double W = L + pw + R, H = 440, ph = H - T - B;
  auto Y = [&](double y) { return T + (1 - std::clamp(y, 0.0, 1.0)) * ph; };
  SvgWriter svg(W, H, title);
  svg.text(L, 26, title, SvgWriter::Anchor::Start, 15, true);
  for (int i = 0; i <= 5; ++i) {
    double v = i / 5.0;
    svg.line(L, Y(v), L + pw, Y(v), kGrid);
    svg.text(L - 6, Y(v) + 4, tick_label(v), SvgWriter::Anchor::End);
  }
  const double slot = pw / static_cast<double>(std::max<size_t>(groups.size(), 1));
  for (size_t g = 0; g < groups.size(); ++g) {
    const double x0 = L + slot * static_cast<double>(g) + (slot - group_w + gap) / 2;
    for (size_t s = 0; s < series.size(); ++s) {
      if (s >= values.size() || g >= values[s].size() || !values[s][g])
        continue;
      const double v = std::clamp(*values[s][g], 0.0, 1.0);
      const double x = x0 + bar * static_cast<double>(s);
      const double h = std::max(Y(0) - Y(v), kZeroBar);
      svg.rect(x, Y(0) - h, bar - 2, h, kPalette[s % kPalette.size()]);
    }
    const double cx = L + slot * (static_cast<double>(g) + 0.5);
    svg.text(cx, T + ph + 16, groups[g], SvgWriter::Anchor::End, 12, false, -30);
  }
  svg.rect(L, T, pw, ph, "none", kAxis);
  svg.text(18, T + ph / 2, y_label, SvgWriter::Anchor::Middle, 12, false, -90);
  double ly = T + 12;
  for (size_t s = 0; s < series.size(); ++s) {
    svg.rect(L + pw + 20, ly - 9, 12, 12, kPalette[s % kPalette.size()]);
    svg.text(L + pw + 38, ly + 1, series[s]);
    ly += 20;
  }
  return svg.finish();
}

std::string accuracy_vs_tokens_svg(const BenchReport& report) {
  std::vector<ScatterPoint> points;
  for (const auto& c : report.configurations) {
    auto acc = c.total.accuracy();
    if (!acc)
      continue;
    ScatterPoint p;
    p.label = c.config.label;
    p.x = c.per_request(c.total.completion_tokens);
    p.y = *acc;
    p.kind = c.config.reasoning == ReasoningChoice::Router ? PointKind::Routed
             : c.config.reasoning == ReasoningChoice::On   ? PointKind::AlwaysReasoning
                                                           : PointKind::Fixed;
    points.push_back(std::move(p));
  }
  if (points.empty())
    return "";
  return scatter_chart(fmt::format("Accuracy vs tokens ({} records)", report.records),
                       "completion tokens per request (reasoning included)", "accuracy", points);
}

std::string category_accuracy_svg(const BenchReport& report) {
  std::set<std::string> names;
  for (const auto& c : report.configurations)
    for (const auto& [name, counts] : c.categories)
      if (counts.gradable)
        names.insert(name);
  if (names.empty())
    return "";
  std::vector<std::string> groups(names.begin(), names.end());
  std::vector<std::string> series;
  std::vector<std::vector<std::optional<double>>> values;
  for (const auto& c : report.configurations) {
    series.push_back(c.config.label);
    std::vector<std::optional<double>> row;
    for (const auto& g : groups) {
      auto it = c.categories.find(g);
      row.push_back(it == c.categories.end() ? std::nullopt : it->second.accuracy());
    }
    values.push_back(std::move(row));
  }
  return grouped_bar_chart("Accuracy per category", "accuracy", groups, series, values);
}

} // namespace semrouter::app
