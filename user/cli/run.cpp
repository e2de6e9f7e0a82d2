// SPDX-License-Identifier: Apache-2.0
// `tardy run`: files and directories of experiments, the report and the summary.
#include "cli/run.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "cli/report.hpp"
#include "experiment/runner.hpp"
#include "model/report_html.hpp"

namespace tardy {
namespace {

namespace fs = std::filesystem;

Result<void> write_file(const std::string& path, const std::string& text) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        f << text;
        if (!f.flush()) return Error::sys("cannot write " + tmp, errno);
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) return Error::sys("cannot write " + path, errno);
    return ok();
}

Result<void> write_report(const std::string& dir, const nlohmann::json& journal) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Error::user("--report " + dir + ": cannot create it: " + ec.message());
    TARDY_TRY(write_file(dir + "/journal.json", journal.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"));
    return write_file(dir + "/report.html", render_report_html(journal));
}

// One file: parsed, run, reported. `report_dir` empty: no report.
int run_one(const std::string& file, const RunArgs& a, const std::string& report_dir, const Paths& p,
            const std::string& self_exe, std::string& status, bool& signalled) {
    std::ifstream in(file);
    if (!in) {
        status = "refused";
        return report(Error::user(file + ": cannot read it: " + std::strerror(errno)));
    }
    std::stringstream text;
    text << in.rdbuf();
    auto x = parse_experiment(text.str(), file);
    if (!x) {
        status = "refused";
        return report(x.error());
    }
    if (!a.dry_run && geteuid() != 0) {
        status = "refused";
        return report(Error::user("tardy run needs root (it loads BPF programs); run it with sudo, or try --dry-run"));
    }
    RunOptions o;
    o.paths = p;
    o.self_exe = self_exe;
    o.dry_run = a.dry_run;
    o.quiet = a.quiet || a.dry_run;
    o.progress_tty = isatty(STDERR_FILENO);
    if (!a.dry_run && !a.quiet) std::fprintf(stderr, "tardy run: %s (%s)\n", x->title.c_str(), file.c_str());
    RunOutcome out = run_experiment(*x, o);
    status = out.status;
    signalled = out.signalled;
    if (!out.journal.is_null() && !report_dir.empty()) {
        if (auto r = write_report(report_dir, out.journal); !r) report(r.error());
    }
    if (a.json && !out.journal.is_null())
        std::printf("%s\n", out.journal.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    if (out.exit_code == kRunRefused)
        std::fprintf(stderr, "tardy: %s\n", one_line(out.reason).c_str());
    else if (!a.dry_run)
        std::fprintf(stderr, "tardy run: %s: %s\n", out.status.c_str(), one_line(out.reason).c_str());
    return out.exit_code;
}

}  // namespace

CLI::App* add_run_command(CLI::App& app, RunArgs& a) {
    auto* c = app.add_subcommand("run", "Run an experiment file (or a directory of them): hypothesis, faults, rollback");
    c->add_option("path", a.path, "An experiment file (YAML), or a directory: each *.yaml/*.yml in name order")->required();
    c->add_flag("--dry-run", a.dry_run, "Check the file and print the plan with its times; inject nothing");
    c->add_option("--report", a.report_dir, "Write journal.json and report.html into this directory");
    c->add_flag("--json", a.json, "Print the journal as JSON on stdout");
    c->add_flag("--quiet", a.quiet, "No progress on stderr");
    c->footer("Exit codes: 0 the hypothesis held; 1 deviated (rolled back); 2 invalid or refused (nothing\n"
              "injected); 3 steady state not met in the baseline (nothing injected); 4 aborted (window closed,\n"
              "signal). A directory runs every file and ends with one summary line.\n"
              "Examples:\n"
              "  tardy run experiments/db-refuses-connections.yaml --dry-run\n"
              "  sudo tardy run experiments/db-refuses-connections.yaml --report /var/lib/tardy/reports/db\n"
              "  sudo tardy run experiments/ --quiet          # replay every experiment, e.g. from a systemd timer\n"
              "File format and semantics: docs/experiments.md");
    return c;
}

int cmd_run(const RunArgs& a, const Paths& p, const std::string& self_exe) {
    std::error_code ec;
    if (!fs::is_directory(a.path, ec)) {
        std::string status;
        bool signalled = false;
        return run_one(a.path, a, a.report_dir, p, self_exe, status, signalled);
    }
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(a.path, ec)) {
        std::string ext = e.path().extension();
        if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(e.path());
    }
    if (ec) return report(Error::user(a.path + ": cannot list it: " + ec.message()));
    if (files.empty()) return report(Error::user(a.path + ": no experiment files (*.yaml, *.yml) in it"));
    std::sort(files.begin(), files.end());
    // Each file's report goes to a directory named after it: its stem, or its whole name when
    // two files share a stem (a.yaml and a.yml).
    std::map<std::string, int> stems;
    for (const auto& f : files) stems[fs::path(f).stem()]++;
    int first_bad = 0;
    size_t ran = 0;
    std::vector<std::pair<std::string, int>> tally;  // statuses in the order they first came
    for (const auto& f : files) {
        std::string status, stem = fs::path(f).stem();
        if (stems[stem] > 1) stem = fs::path(f).filename();
        bool signalled = false;
        int rc = run_one(f, a, a.report_dir.empty() ? "" : a.report_dir + "/" + stem, p, self_exe, status, signalled);
        std::string key = status.empty() ? "failed" : status;
        auto it = std::find_if(tally.begin(), tally.end(), [&](const auto& t) { return t.first == key; });
        if (it == tally.end()) tally.emplace_back(key, 1);
        else it->second++;
        ran++;
        if (rc != 0 && first_bad == 0) first_bad = rc;
        if (signalled) break;  // a signal ends the suite; a closed window only its own file
    }
    std::string line;
    for (const auto& [s, n] : tally) line += (line.empty() ? "" : ", ") + std::to_string(n) + " " + s;
    // With --json stdout holds one journal per line and nothing else.
    FILE* to = a.json ? stderr : stdout;
    if (ran < files.size())
        std::fprintf(to, "%zu of %zu experiments run (stopped by a signal): %s\n", ran, files.size(), line.c_str());
    else
        std::fprintf(to, "%zu experiments: %s\n", ran, line.c_str());
    return first_bad;
}

}  // namespace tardy
