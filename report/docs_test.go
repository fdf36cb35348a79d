package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSchemaDocExample keeps the example in docs/json-schema.md equal to the randrw
// golden document, and its key tables in step with what Build writes; -update
// rewrites the example.
func TestSchemaDocExample(t *testing.T) {
	docPath := filepath.Join("..", "docs", "json-schema.md")
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "randrw.json.golden"))
	if err != nil {
		t.Fatal(err)
	}
	const open, closing = "```json\n", "```\n"
	start := bytes.LastIndex(doc, []byte(open))
	if start < 0 {
		t.Fatalf("%s has no ```json example block", docPath)
	}
	start += len(open)
	end := bytes.Index(doc[start:], []byte(closing))
	if end < 0 {
		t.Fatalf("%s: example block is not closed", docPath)
	}
	end += start
	if *update {
		out := append(append(append([]byte{}, doc[:start]...), golden...), doc[end:]...)
		if err := os.WriteFile(docPath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		doc = out
	} else if !bytes.Equal(doc[start:end], golden) {
		t.Errorf("the example in %s differs from testdata/randrw.json.golden (go test ./report -update rewrites it)", docPath)
	}

	// Every key the document writes is described in a table row ("| `key` |").
	m := decodeMap(t, Build(fixtureMeta(randrwConfig()), verifyResult(t), "error: example"))
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				if prefix == "percentiles" || prefix == "labels" {
					continue // keys are data, documented as a list
				}
				if !strings.Contains(string(doc), "`"+k+"`") {
					t.Errorf("key %q (under %q) is not documented in %s", k, prefix, docPath)
				}
				walk(k, child)
			}
		case []any:
			for _, child := range x {
				walk(prefix, child)
			}
		}
	}
	walk("", m)
}
