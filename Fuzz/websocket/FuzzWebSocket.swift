// SPDX-License-Identifier: Apache-2.0
import GatehouseFuzzHarness

/// libFuzzer's entry point (built with -sanitize=fuzzer and -DFUZZING).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { FuzzHarness.webSocketFrames(UnsafeRawBufferPointer(start: data, count: size)); return 0 }

#if FUZZING
@_cdecl("fuzz_websocket_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt { runLibFuzzer(argc, argv, fuzzOne) }
#else
/// Without libFuzzer: runs each file named on the command line through the harness once.
@main struct Replay { static func main() { replay(CommandLine.arguments.dropFirst(), through: FuzzHarness.webSocketFrames) } }
#endif
