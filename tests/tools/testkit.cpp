// SPDX-License-Identifier: Apache-2.0
// tardy-testkit: the test drivers (tests/tools/drivers.hpp) behind one command line.
//   tardy-testkit sockcall|writetime|filecall [options]
#include <CLI/CLI.hpp>

#include "drivers.hpp"

using namespace tardy;

int main(int argc, char** argv) {
    CLI::App app{"tardy-testkit: test drivers for tardy's integration tests", "tardy-testkit"};
    app.require_subcommand(1);
    SockCallArgs sa;
    add_sockcall_options(app.add_subcommand("sockcall", "Make socket calls and count outcomes by errno"), sa);
    WriteTimeArgs wa;
    add_writetime_options(app.add_subcommand("writetime", "Time write(2)s to /dev/null"), wa);
    FileCallArgs fa;
    add_filecall_options(app.add_subcommand("filecall", "Make file calls and count outcomes by errno"), fa);
    CLI11_PARSE(app, argc, argv);
    if (app.got_subcommand("sockcall")) return run_sockcall(sa);
    if (app.got_subcommand("writetime")) return run_writetime(wa);
    return run_filecall(fa);
}
