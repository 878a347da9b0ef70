package dfs

import (
	"fmt"
	"strings"
)

// CheckPath reports whether name is a clean relative path as FS requires;
// the error wraps ErrInvalidPath. The empty name (the root) is allowed only
// when root is true.
func CheckPath(name string, root bool) error {
	if name == "" {
		if root {
			return nil
		}
		return fmt.Errorf("%w: empty name", ErrInvalidPath)
	}
	if len(name) > 4096 {
		return fmt.Errorf("%w: name of %d bytes", ErrInvalidPath, len(name))
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("%w: %q", ErrInvalidPath, name)
		}
		if strings.ContainsRune(el, 0) {
			return fmt.Errorf("%w: %q contains NUL", ErrInvalidPath, name)
		}
	}
	return nil
}

// Dir returns the parent directory of name ("" for the root).
func Dir(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

// Join joins path elements with "/", skipping empty ones.
func Join(elem ...string) string {
	var parts []string
	for _, e := range elem {
		if e != "" {
			parts = append(parts, e)
		}
	}
	return strings.Join(parts, "/")
}
