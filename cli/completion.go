package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"
)

const bashCompletion = `# bash completion for sclp-ovs; load with: source <(sclp-ovs completion bash)
_sclp_ovs_complete() {
    local cur words
    cur="${COMP_WORDS[COMP_CWORD]}"
    words=("${COMP_WORDS[@]:0:COMP_CWORD}")
    [[ $cur == -* ]] && words+=("$cur") # urfave/cli completes flags after a "-" word
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$("${words[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
    [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
    return 0
}
complete -o default -F _sclp_ovs_complete sclp-ovs
`

func completionCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash)",
		ArgsUsage: "bash",
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 || c.Args().First() != "bash" {
				return usagef("completion needs the shell name: sclp-ovs completion bash")
			}
			fmt.Fprint(c.App.Writer, bashCompletion)
			return nil
		},
	}
}
