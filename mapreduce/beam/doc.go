// Package cellarbeam connects Apache Beam pipelines (Go SDK) to Cellar
// tables: Read is a source, Write a sink. It lives in its own module
// (cellar/mapreduce/beam, with `replace cellar => ../..`) so that the core
// module does not depend on Beam.
//
// # Source
//
// Read is a splittable DoFn. Its initial restriction, a KeyRange over the
// configured rows, is split into one KeyRange per tablet when the
// pipeline starts (SplitRestriction asks the master for the table's tablet
// boundaries), so a runner spreads tablets over workers. While a range is
// read, a runner may split it further (dynamic work rebalancing):
// KeyRangeTracker.TrySplit picks a row key between the last claimed row
// and the end by interpolating the bytes after their common prefix, and the
// reader stops at the first row past the new end. Each range is scanned
// with client.ReadRows, which follows tablets across moves and splits and
// never returns a row twice; a scan that fails fails the bundle, and the
// runner retries it from the restriction's start.
//
// # Sink
//
// Write batches each bundle's rows into ApplyBulk calls through
// mapreduce.TableOutput, flushing when the bundle finishes. Every cell is
// written with an explicit timestamp: its own, or, for Timestamp -1, the
// pipeline's write timestamp fixed when the pipeline is built
// (WriteConfig.Timestamp). A bundle a runner retries therefore rewrites the
// same versions and the table ends as if it had run once (the reasoning of
// mapreduce.TableOutput; DoFns must be deterministic).
//
// # Running a pipeline
//
// In-process, with Beam's prism runner (what the tests do):
//
//	import _ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
//
//	func main() {
//		flag.Parse()
//		beam.Init()
//		p, s := beam.NewPipelineWithRoot()
//		rows := cellarbeam.Read(s, cellarbeam.ReadConfig{Cluster: []string{"lock1:7070"}, Table: "docs"})
//		... // transforms producing a PCollection of cellarbeam.Row
//		cellarbeam.Write(s, cellarbeam.WriteConfig{Cluster: []string{"lock1:7070"}, Table: "counts", Families: []string{"c"}}, out)
//		if _, err := beam.Run(context.Background(), "prism", p); err != nil { ... }
//	}
//
// On a distributed engine, build the same program with that runner's
// package imported instead (import only the runner you use; beamx links
// in every runner) and pass the runner's flags. The workers must reach
// the Cellar lock service and tablet servers over the network (the
// addresses in the cluster's lock service, as the client uses them):
//
//   - Flink: start Beam's Flink job server for your Flink version (the
//     beam-runners-flink-<ver>-job-server container or jar, pointed at the
//     Flink master), import .../go/pkg/beam/runners/flink, and run with
//     --runner=flink --endpoint=JOBSERVER:8099
//     --environment_type=DOCKER (or LOOPBACK for a local Flink).
//   - Spark: the same with Beam's Spark job server
//     (beam-runners-spark-3-job-server), .../runners/spark, and
//     --runner=spark --endpoint=JOBSERVER:8099.
//   - Google Cloud Dataflow: import .../runners/dataflow and run with
//     --runner=dataflow --project=P --region=R
//     --staging_location=gs://B/staging --temp_location=gs://B/tmp; the
//     Dataflow workers must have a network route to the Cellar cluster
//     (for example a VPC the cluster runs in, --network/--subnetwork).
//
// Only the prism path is tested here; the others follow Beam's standard
// portable submission and are not exercised by this project's CI.
//
// # Concurrency
//
// DoFn instances are used by one bundle at a time, as Beam guarantees.
// Clients are shared per cluster within a worker process (CloseClients
// closes them).
package cellarbeam
