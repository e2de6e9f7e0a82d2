// SPDX-License-Identifier: Apache-2.0
// report.html of `tardy run --report DIR`: one self-contained page (inline CSS and SVG, no
// script, no network) made from the run's journal. The verdict on top; then, for each
// hypothesis entry, its values over time for the experiment and the control cohort, the
// bound as a dashed line, the fault steps shaded and breaches marked; the phases and their
// faults with counters; the statistical comparison; the breaches.
//
// The journal (journal.json, docs/experiments.md) as far as this page reads it; every key
// may be missing or null in a journal of a run that ended early, and the page still renders:
// {
//   "title": str, "description": str, "file": str,
//   "status": "held" | "deviated" | "baseline_not_met" | "aborted" | "refused" | "failed",
//   "exit_code": int, "reason": str,            // reason: one line, why it ended so
//   "started": "2026-12-01T09:10:04Z", "ended": str, "duration_s": num,
//   "cohorts": {"experiment": {"cgroup": str}, "control": {"cgroup": str} | null},
//   "window": str | null,                        // described, for people
//   "hypothesis": [{"id": int, "text": str,      // "tcp.connect_ms.p99 <= control +20%"
//                   "kind": "metric" | "probe", "unit": str}],   // unit: "ms", "", "%"...
//   "phases": [{"name": "baseline" | "step 1" ... | "recovery", "kind": "baseline" |
//               "method" | "recovery", "start_s": num, "end_s": num,  // seconds from start
//               "planned_s": num, "completed": bool,
//               "fault": {"text": str, "injection": str, "counters": {str: num}} | null}],
//   "samples": [{"t_s": num, "phase": int,       // index into phases
//                "values": [{"id": int, "experiment": num | null, "control": num | null,
//                            "limit": num | null, "ok": bool | null}]}],
//   "breaches": [{"t_s": num, "phase": int, "id": int, "text": str}],
//   "comparison": [{"metric": str, "unit": str, "text": str,   // describe(Comparison)
//                   "p_value": num, "shift": num, "shift_ci": [num, num],
//                   "superiority": num, "n_experiment": int, "n_control": int}]
// }
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace tardy {

// The page. Every string from the journal is HTML-escaped; numbers that are not finite are
// shown as "-". Never throws on a journal of the wrong shape: what it cannot read it leaves out.
std::string render_report_html(const nlohmann::json& journal);

}  // namespace tardy
