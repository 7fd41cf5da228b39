module github.com/starbook/starbook

go 1.26.8

require go.starlark.net v0.0.0-20260908191801-89a6a09411d5

require (
	golang.org/x/sys v0.49.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
