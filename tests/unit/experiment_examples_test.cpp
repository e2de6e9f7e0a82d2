// SPDX-License-Identifier: Apache-2.0
// The experiment files shipped in experiments/ and the reference in docs/experiments.md,
// held to the parser: every example file parses and has a method and a hypothesis; every
// complete file shown in the docs parses; every metric name in the docs' metric table is one
// known_metric() accepts, with the default min_count the table gives, and the table names
// every metric tardy measures. The docs and examples cannot drift from the code unnoticed.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "model/experiment.hpp"
#include "model/hypothesis.hpp"

namespace tardy {
namespace {

namespace fs = std::filesystem;

bool is_root(const fs::path& p) { return fs::exists(p / "docs/experiments.md") && fs::is_directory(p / "experiments"); }

// The checkout: the first ancestor of this binary's directory (build/unit_tests) holding
// docs/experiments.md and experiments/, else of the current directory.
fs::path examples_root() {
    std::error_code ec;
    for (fs::path start : {fs::read_symlink("/proc/self/exe", ec).parent_path(), fs::current_path(ec)})
        for (fs::path p = start; !p.empty(); p = p.parent_path()) {
            if (is_root(p)) return p;
            if (p == p.root_path()) break;
        }
    return {};
}

std::string slurp(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

class ExperimentExamples : public ::testing::Test {
protected:
    void SetUp() override {
        root = examples_root();
        ASSERT_FALSE(root.empty()) << "no docs/experiments.md and experiments/ above the test binary or the current directory";
    }
    fs::path root;
};

TEST_F(ExperimentExamples, EveryExampleFileParsesWithAMethodAndAHypothesis) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(root / "experiments")) {
        std::string ext = e.path().extension();
        if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    ASSERT_GE(files.size(), 3u) << "experiments/ should hold the example files";
    for (const auto& f : files) {
        std::string name = "experiments/" + f.filename().string();
        auto x = parse_experiment(slurp(f), name);
        ASSERT_TRUE(x) << x.error().message;
        EXPECT_FALSE(x->title.empty()) << name;
        EXPECT_FALSE(x->method.empty()) << name;
        EXPECT_FALSE(x->hypothesis.empty()) << name << ": an example without a hypothesis only injects faults";
        for (const auto& s : x->method) EXPECT_GT(s.for_ns, 0u) << name << ":" << s.line;
    }
}

// The files the docs name (and `tardy run --help`, db-refuses-connections.yaml) exist.
TEST_F(ExperimentExamples, TheFilesTheHelpNamesExist) {
    for (const char* f : {"db-refuses-connections.yaml", "slow-cache.yaml", "packet-loss-upstream.yaml"})
        EXPECT_TRUE(fs::exists(root / "experiments" / f)) << f;
}

// Every ```yaml block of the docs that is a whole experiment file (it has a title: line).
TEST_F(ExperimentExamples, EveryCompleteFileInTheDocsParses) {
    std::istringstream doc(slurp(root / "docs/experiments.md"));
    std::string line, block;
    bool in = false;
    int n = 0, start = 0, lineno = 0;
    while (std::getline(doc, line)) {
        lineno++;
        if (!in && line.rfind("```yaml", 0) == 0) {
            in = true;
            block.clear();
            start = lineno + 1;
        } else if (in && line.rfind("```", 0) == 0) {
            in = false;
            if (block.rfind("title:", 0) == 0 || block.find("\ntitle:") != std::string::npos) {
                n++;
                std::string where = "docs/experiments.md (block at line " + std::to_string(start) + ")";
                auto x = parse_experiment(block, where);
                EXPECT_TRUE(x) << x.error().message;
            }
        } else if (in) {
            block += line + "\n";
        }
    }
    EXPECT_GE(n, 1) << "docs/experiments.md shows no complete experiment file";
}

struct MetricRow {
    std::string name, per_s, events;
};

// The rows of the table between <!-- metric-names:begin --> and <!-- metric-names:end -->:
// | `name` | `name_per_s` or - | default min_count | meaning |
std::vector<MetricRow> metric_table(const std::string& doc, std::set<std::string>& every_name) {
    const std::string begin = "<!-- metric-names:begin -->", end = "<!-- metric-names:end -->";
    size_t b = doc.find(begin), e = doc.find(end);
    std::vector<MetricRow> rows;
    if (b == std::string::npos || e == std::string::npos || e < b) return rows;
    std::string region = doc.substr(b + begin.size(), e - b - begin.size());
    // Every backticked word in the region is a metric name.
    for (size_t p = region.find('`'); p != std::string::npos;) {
        size_t q = region.find('`', p + 1);
        if (q == std::string::npos) break;
        every_name.insert(region.substr(p + 1, q - p - 1));
        p = region.find('`', q + 1);
    }
    std::istringstream in(region);
    auto trim = [](std::string s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '`')) s.erase(s.begin());
        while (!s.empty() && (s.back() == ' ' || s.back() == '`')) s.pop_back();
        return s;
    };
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("| `", 0) != 0) continue;  // the header and the |---| line
        std::vector<std::string> cells;
        std::stringstream ls(line.substr(1));
        for (std::string c; std::getline(ls, c, '|');) cells.push_back(trim(c));
        if (cells.size() < 4) continue;
        rows.push_back({cells[0], cells[1], cells[2]});
    }
    return rows;
}

TEST_F(ExperimentExamples, TheDocsMetricTableMatchesTheCode) {
    std::set<std::string> names;
    auto rows = metric_table(slurp(root / "docs/experiments.md"), names);
    ASSERT_GE(rows.size(), 25u) << "no metric table between <!-- metric-names:begin --> and <!-- metric-names:end -->";
    for (const auto& n : names) EXPECT_TRUE(known_metric(n)) << "docs/experiments.md lists `" << n << "`, which tardy refuses";
    for (const auto& r : rows) {
        ASSERT_TRUE(known_metric(r.name)) << r.name;
        EXPECT_EQ(std::to_string(default_min_count(r.name)), r.events) << "default min_count of " << r.name;
        if (r.per_s != "-") EXPECT_EQ(r.per_s, r.name + "_per_s");
        else EXPECT_FALSE(known_metric(r.name + "_per_s")) << r.name << "_per_s exists: list it";
    }
    // The other way: every metric the code knows is in the table (metric_examples() lists each
    // count, the ratio, and each histogram's forms).
    for (const auto& ex : metric_examples()) {
        std::string first = ex.substr(0, ex.find(' '));
        if (ex.find(" (and ") != std::string::npos) {
            EXPECT_TRUE(names.count(first)) << first << " is missing from the docs' metric table";
            EXPECT_TRUE(names.count(first + "_per_s")) << first << "_per_s is missing from the docs' metric table";
        } else if (ex.find(".pNN") != std::string::npos) {
            std::string hist = ex.substr(0, ex.find(".pNN"));
            EXPECT_TRUE(names.count(hist + ".mean")) << hist << ".mean is missing";
            EXPECT_TRUE(names.count(hist + ".count")) << hist << ".count is missing";
            EXPECT_TRUE(names.count(hist + ".p99")) << hist << ".p99 is missing";
        } else {
            EXPECT_TRUE(names.count(ex)) << ex << " is missing from the docs' metric table";
        }
    }
}

}  // namespace
}  // namespace tardy
