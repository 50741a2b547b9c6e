using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Health.Bench.Micro.LedgerBenchmarks).Assembly).Run(args);
