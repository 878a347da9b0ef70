module cellar/mapreduce/beam

go 1.26.0

replace cellar => ../..

require github.com/apache/beam/sdks/v2 v2.77.0 // indirect
